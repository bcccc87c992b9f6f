# `make package`: Debian packages of the two programs, made by CPack.
#   porthole   /usr/bin/porthole and its docs
#   portholed  /usr/bin/portholed, its systemd unit, /etc/porthole/portholed.yml
#              (a conffile), the certbot deploy hook, its docs; the maintainer
#              scripts create the `porthole` user and /var/lib/porthole.
# Dependencies on shared libraries come from dpkg-shlibdeps.

include(GNUInstallDirs)

install(TARGETS porthole RUNTIME DESTINATION bin COMPONENT porthole)
install(FILES README.md docs/CONFIG.md docs/INSPECTOR.md docs/PROTOCOL.md docs/SECURITY.md
        DESTINATION share/doc/porthole COMPONENT porthole)

install(TARGETS portholed RUNTIME DESTINATION bin COMPONENT portholed)
install(FILES packaging/portholed.service DESTINATION /lib/systemd/system COMPONENT portholed)
install(FILES packaging/portholed.yml DESTINATION /etc/porthole COMPONENT portholed)
install(PROGRAMS packaging/certbot-deploy-hook DESTINATION share/portholed COMPONENT portholed)
install(FILES README.md docs/CONFIG.md docs/SECURITY.md docs/SELF-HOSTING.md docs/PROTOCOL.md
        DESTINATION share/doc/portholed COMPONENT portholed)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL porthole portholed)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "porthole maintainers <porthole@example.org>")
string(REGEX REPLACE "/issues/?$" "" porthole_homepage "${PORTHOLE_BUG_URL}")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${porthole_homepage}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE "")

set(CPACK_DEBIAN_PORTHOLE_PACKAGE_NAME porthole)
set(CPACK_DEBIAN_PORTHOLE_PACKAGE_DEPENDS "ca-certificates")
set(CPACK_COMPONENT_PORTHOLE_DESCRIPTION "self-hosted tunnel: the client agent\nporthole gives a local web app, webhook receiver or ssh daemon behind NAT, a\nfirewall or an HTTP proxy a public URL on a portholed server, through a TLS\ntunnel, and captures every HTTP exchange for inspection and replay. It\nspeaks the ngrok 1.x protocol.")

set(CPACK_DEBIAN_PORTHOLED_PACKAGE_NAME portholed)
set(CPACK_DEBIAN_PORTHOLED_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PORTHOLED_PACKAGE_SUGGESTS "certbot")
set(CPACK_COMPONENT_PORTHOLED_DESCRIPTION "self-hosted tunnel: the server\nportholed accepts porthole (and ngrok 1.x) clients over TLS and routes public\nHTTP, HTTPS and TCP connections to them by Host header, SNI or port. It runs\nas a hardened systemd service under its own user.")
set(porthole_deb_scripts ${PROJECT_SOURCE_DIR}/packaging/debian/portholed)
set(CPACK_DEBIAN_PORTHOLED_PACKAGE_CONTROL_EXTRA
  ${porthole_deb_scripts}/postinst ${porthole_deb_scripts}/prerm
  ${porthole_deb_scripts}/postrm ${porthole_deb_scripts}/conffiles)
set(CPACK_DEBIAN_PORTHOLED_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
