"""Which public names a client may have: not the server's own, not outside the
domain unless the operator allows it, a subdomain that is one DNS label, and
never a URL another client has live or held for its reconnect."""

import re

import pytest

from harness import curl, urls_of


def refused(start_porthole, server, backend, *args, **kw) -> str:
    """Starts a client that the server must refuse; returns what it printed."""
    client = start_porthole("http", f"127.0.0.1:{backend.port}", "--proto", "http", *args,
                            server=server, wait_up=False, **kw)
    assert client.proc.wait_exit() != 0
    text = client.proc.text()
    assert "Forwarding " not in text
    return text


def hello(url: str) -> None:
    r = curl(f"{url}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.stderr)


def test_the_servers_own_name_is_refused(server, http_backend, start_porthole):
    text = refused(start_porthole, server, http_backend, "--hostname", "LocalHost")
    assert ("Hostname localhost is this server's own name and cannot be a tunnel; ask for a "
            "subdomain of it instead.") in text, text


def test_a_hostname_outside_the_domain_is_refused_by_default(server, http_backend,
                                                             start_porthole):
    text = refused(start_porthole, server, http_backend, "--hostname", "www.example.org")
    assert ("Hostname www.example.org is outside this server's domain localhost; ask for a "
            "subdomain, or ask the operator to allow it (--allow-hostname).") in text, text
    # The server's log is read by another thread: wait for the line.
    server.proc.wait_for(r'ReqTunnel refused .*reason="Hostname www\.example\.org is outside')


def test_an_allowed_hostname_outside_the_domain_is_served(start_portholed, http_backend,
                                                          start_porthole):
    server = start_portholed("--allow-hostname", "*.example.org")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            "--hostname", "WWW.example.org", server=server)
    assert client.urls == [f"http://www.example.org:{server.http_port}"]
    r = curl(f"http://www.example.org:{server.http_port}/hello", "--resolve",
             f"www.example.org:{server.http_port}:127.0.0.1")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    # The pattern is a suffix: the name itself and look-alikes are not in it.
    text = refused(start_porthole, server, http_backend, "--hostname", "badexample.org")
    assert "Hostname badexample.org is outside this server's domain" in text, text


def test_any_hostname_is_allowed_when_the_operator_says_so_but_not_the_servers_own(
        start_portholed, http_backend, start_porthole):
    server = start_portholed("--allow-any-hostname")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            "--hostname", "anything.test", server=server)
    assert client.urls == [f"http://anything.test:{server.http_port}"]
    text = refused(start_porthole, server, http_backend, "--hostname", "localhost")
    assert "Hostname localhost is this server's own name" in text, text


def test_a_hostname_several_labels_below_the_domain_is_refused(server, http_backend,
                                                               start_porthole):
    text = refused(start_porthole, server, http_backend, "--hostname", "a.foo.localhost")
    assert ("Hostname a.foo.localhost is more than one label below localhost; this server "
            "gives out <name>.localhost only.") in text, text


def test_a_hostname_one_label_below_the_domain_is_like_a_subdomain(server, http_backend,
                                                                   start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            "--hostname", "Named.localhost", server=server)
    assert client.urls == [f"http://named.localhost:{server.http_port}"]
    hello(client.url())


@pytest.mark.parametrize("sub, why", [
    ("a.b", "a subdomain is one DNS label, without dots."),
    ("-lead", "use 1 to 63 letters, digits and '-', not starting or ending with '-'."),
    ("trail-", "use 1 to 63 letters, digits and '-', not starting or ending with '-'."),
    ("under_score", "use 1 to 63 letters, digits and '-', not starting or ending with '-'."),
    ("x" * 64, "use 1 to 63 letters, digits and '-', not starting or ending with '-'."),
])
def test_an_invalid_subdomain_is_refused_with_the_rule(sub, why, server, http_backend,
                                                       start_porthole):
    text = refused(start_porthole, server, http_backend, "--subdomain", sub)
    assert f"Invalid subdomain '{sub}': {why}" in text, text


def test_a_subdomain_is_case_folded(server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            "--subdomain", "MiXeD", server=server)
    assert client.urls == [f"http://mixed.localhost:{server.http_port}"]
    hello(client.url())
    # The same name in other case is the same name: taken.
    text = refused(start_porthole, server, http_backend, "--subdomain", "mixed")
    assert (f"The tunnel http://mixed.localhost:{server.http_port} is already registered by "
            "another client.") in text, text


def test_a_url_held_for_a_disconnected_client_is_refused_naming_it(server, http_backend,
                                                                   start_porthole, tmp_path):
    first = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                           "--subdomain", "held", server=server)
    mark = server.proc.mark()
    first.proc.kill()  # gone without giving its URL back: it is held for its return
    server.proc.wait_for(r"tunnel down .*url=http://held\.localhost", since=mark)
    # Another user's client (its own home, so not the first one's resumed session).
    text = refused(start_porthole, server, http_backend, "--subdomain", "held",
                   home=tmp_path / "another-home")
    assert (f"The tunnel http://held.localhost:{server.http_port} is already registered: it is "
            "held for another client that disconnected and may come back") in text, text


def test_a_tcp_port_held_for_a_disconnected_client_is_refused(tcp_server, tcp_echo,
                                                                        start_porthole, tmp_path):
    server = tcp_server
    first = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server)
    [url] = first.urls
    port = url.rsplit(":", 1)[1]
    mark = server.proc.mark()
    first.proc.kill()
    server.proc.wait_for(rf"tunnel down .*url={re.escape(url)}", since=mark)
    second = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", "--remote-port", port,
                            server=server, wait_up=False, home=tmp_path / "another-home")
    assert second.proc.wait_exit() != 0
    text = second.proc.text()
    # The same words as for a port anything else holds (see test_tcp.py).
    assert (f"Remote port {port} is not available; ask for another, or for none and the server "
            "chooses.") in text, text


def test_another_client_cannot_take_the_other_scheme_of_a_name(server, http_backend,
                                                               start_porthole, tmp_path):
    # Issue 16, finding 2: a name is one client's across http and https.
    first = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "myapp",
                           "--proto", "https", server=server)
    assert first.urls == [f"https://myapp.localhost:{server.https_port}"]
    text = refused(start_porthole, server, http_backend, "--subdomain", "myapp",
                   home=tmp_path / "another-home")
    assert (f"The tunnel http://myapp.localhost:{server.http_port} is already registered by "
            "another client.") in text, text
    # Nobody serves http://myapp: it is not found, not another client's service.
    r = curl(f"http://myapp.localhost:{server.http_port}/hello")
    assert r.status == 404, (r.status, r.body[:300])


def test_another_client_cannot_take_the_other_scheme_of_a_held_random_name(
        server, http_backend, start_porthole, tmp_path):
    first = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "https",
                           server=server)
    host = first.url("https").split("://", 1)[1].split(":")[0]
    mark = server.proc.mark()
    first.proc.kill()  # its random name is held for its return
    server.proc.wait_for(rf"tunnel down .*url=https://{re.escape(host)}", since=mark)
    text = refused(start_porthole, server, http_backend, "--subdomain", host.split(".")[0],
                   home=tmp_path / "another-home")
    assert (f"The tunnel http://{host}:{server.http_port} is already registered: it is held for "
            "another client that disconnected and may come back") in text, text
    # While it is away, both schemes of its name say it is reconnecting.
    r = curl(f"http://{host}:{server.http_port}/hello")
    assert r.status == 503 and b"reconnecting" in r.body, (r.status, r.body[:300])


def test_one_client_may_serve_the_two_schemes_of_its_name_in_two_tunnels(
        server, http_backend, start_porthole, tmp_path):
    config = tmp_path / "porthole.yml"
    config.write_text(f"""tunnels:
  secure:
    subdomain: both
    proto: {{https: {http_backend.port}}}
  plain:
    subdomain: both
    proto: {{http: {http_backend.port}}}
""")
    client = start_porthole("start", "--all", "--config", str(config), server=server,
                            wait_up=False)
    up = client.wait_tunnels(2, timeout=20)
    assert sorted(urls_of(up)) == [f"http://both.localhost:{server.http_port}",
                                   f"https://both.localhost:{server.https_port}"]
    hello(f"http://both.localhost:{server.http_port}")
    r = curl(f"https://both.localhost:{server.https_port}/hello", cacert=server.ca)
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
