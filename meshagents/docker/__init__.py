"""Docker engine control for the host agent: list, exec (whitelisted), logs, enroll.

Pure cores (no I/O, unit-tested):
    whitelist.check_argv(argv, whitelist) -> str      executable allowed, else rejected_args
    whitelist.whitelist_risks(whitelist) -> list[str] entries that allow anything (sh, busybox)
    output.cap_bytes(data, cap) -> Capped             UTF-8-safe output cap
    lines.LineSplitter / lines.parse_since            log line framing, `since` parsing
    manifest.light_capabilities(...)                  manifest entries for light mode

Thin shells over the docker SDK (integration-tested on a real engine):
    engine.connect(docker_host) -> DockerClient       socket path, URL or DOCKER_HOST
    engine.get_container(client, name) / require_running(container)
    listing.list_containers(client, ...)
    execute.exec_in(container, argv, whitelist, timeout, output_cap)
    logs.tail(container, ...) / logs.follow(container, ...)   (follow is a bounded generator)
    deep.attach(container, ...) / deep.detach(container)      container as its own mesh peer

Errors (``FnError`` codes): docker_unavailable, container_not_found,
container_not_running, rejected_args, docker_error, deep_attach_failed.
"""
