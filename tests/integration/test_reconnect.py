"""The client survives a server restart and gets its tunnels back."""

from harness import TUNNEL_UP, curl


def test_client_reconnects_after_server_restart_with_same_urls(start_portholed, http_backend,
                                                               start_porthole):
    first = start_portholed()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=first)
    urls = sorted(client.urls)
    for url in urls:
        r = curl(f"{url}/hello")
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.stderr)

    before_loss = client.proc.mark()
    first.proc.kill()
    client.proc.wait_for(r"reconnecting", timeout=15, since=before_loss)

    # Same ports, same state dir (so the same dev CA).
    second = start_portholed(
        state_dir=first.state_dir,
        http_addr=f"127.0.0.1:{first.http_port}",
        https_addr=f"127.0.0.1:{first.https_port}",
        tunnel_addr=f"127.0.0.1:{first.tunnel_port}")
    assert (second.http_port, second.https_port, second.tunnel_port) == \
        (first.http_port, first.https_port, first.tunnel_port)

    ups = client.proc.wait_for_all(TUNNEL_UP, len(urls), timeout=45, since=before_loss)
    assert sorted(m["url"] for m in ups) == urls
    assert client.proc.running
    for url in urls:
        r = curl(f"{url}/hello")
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.stderr)
