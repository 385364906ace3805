"""Micro-benchmark of the Omaha codec on a typical check-in.

Prints microseconds per parse_request / render_response / parse_response /
render_request for a real update_engine update check and a Nebraska-style
"update available" reply, side by side with a naive lxml baseline (default
parser + tree walking with find(); lxml tree building + tostring()), and the
ratio. The hardened parser does strictly more work than the baseline (limits,
encoding, DTD checks), so a ratio near 1 for parsing is the goal; rendering by
string building should be clearly faster.

    .venv/bin/python bench/omaha_codec.py [--number N]
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from lxml import etree

from wellcar.omaha import (
    FLATCAR_APP_ID,
    OS,
    Action,
    AppRequest,
    AppResponse,
    Event,
    Manifest,
    Package,
    Ping,
    Request,
    Response,
    UpdateCheck,
    UpdateCheckResponse,
    parse_request,
    parse_response,
    render_request,
    render_response,
)

REQUEST = b"""\
<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" \
installsource="scheduler" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="4459.2.1_x86_64"></os>
    <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="4459.2.1" track="stable" \
bootid="{b3c6a1e4-5f9c-4c11-9d8b-2f0e3c1a7b55}" oem="qemu" oemversion="0.1.2" \
alephversion="4230.2.0" machineid="9ce7d2ab5c3e4e0f8a1b2c3d4e5f6a7b" machinealias="" \
lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
        <ping active="1"></ping>
        <updatecheck></updatecheck>
        <event eventtype="3" eventresult="2" previousversion=""></event>
    </app>
</request>
"""

RESPONSE = Response(
    server="wellcar",
    apps=[
        AppResponse(
            appid=FLATCAR_APP_ID,
            ping_status="ok",
            event_statuses=["ok"],
            updatecheck=UpdateCheckResponse(
                status="ok",
                urls=["https://update.release.flatcar-linux.net/amd64-usr/4459.2.2/"],
                manifests=[
                    Manifest(
                        version="4459.2.2",
                        packages=[
                            Package(
                                name="flatcar_production_update.gz",
                                hash="x5N3TyB8Vr0x3QvmcnPNX6Dz0q4=",
                                size=480000000,
                            )
                        ],
                        actions=[
                            Action(
                                sha256="cyGJrMF8ZuKzNxt6j5IbBn2ZnmjdDRVpSHuQxGzEzQ8=",
                                disable_payload_backoff=True,
                            )
                        ],
                    )
                ],
            ),
        )
    ],
)


# --- naive baseline ------------------------------------------------------------


def _opt_int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _opt_bool(value: str | None) -> bool | None:
    return None if value is None else value.lower() in ("true", "1")


def naive_parse_request(body: bytes) -> Request:
    root = etree.fromstring(body)
    os_el = root.find("os")
    req = Request(
        version=root.get("version"),
        updaterversion=root.get("updaterversion"),
        installsource=root.get("installsource"),
        ismachine=_opt_int(root.get("ismachine")),
        os=None
        if os_el is None
        else OS(os_el.get("platform"), os_el.get("version"), os_el.get("sp"), os_el.get("arch")),
    )
    for app_el in root.findall("app"):
        ping = app_el.find("ping")
        uc = app_el.find("updatecheck")
        req.apps.append(
            AppRequest(
                appid=app_el.get("appid", ""),
                version=app_el.get("version"),
                track=app_el.get("track"),
                bootid=app_el.get("bootid"),
                machineid=app_el.get("machineid"),
                machinealias=app_el.get("machinealias"),
                oem=app_el.get("oem"),
                oemversion=app_el.get("oemversion"),
                alephversion=app_el.get("alephversion"),
                lang=app_el.get("lang"),
                board=app_el.get("board"),
                hardware_class=app_el.get("hardware_class"),
                delta_okay=_opt_bool(app_el.get("delta_okay")),
                ping=None if ping is None else Ping(active=_opt_int(ping.get("active"))),
                updatecheck=None if uc is None else UpdateCheck(),
                events=[
                    Event(
                        eventtype=int(ev.get("eventtype", "0")),
                        eventresult=int(ev.get("eventresult", "0")),
                        errorcode=_opt_int(ev.get("errorcode")),
                        previousversion=ev.get("previousversion"),
                    )
                    for ev in app_el.findall("event")
                ],
            )
        )
    return req


def _set(el: etree._Element, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        el.set(name, "true" if value else "false")
    else:
        el.set(name, str(value))


def naive_render_response(resp: Response) -> bytes:
    root = etree.Element("response", protocol=resp.protocol, server=resp.server)
    etree.SubElement(root, "daystart", elapsed_seconds=str(resp.daystart_elapsed_seconds))
    for app in resp.apps:
        app_el = etree.SubElement(root, "app", appid=app.appid, status=app.status)
        for status in app.event_statuses:
            etree.SubElement(app_el, "event", status=status)
        if app.ping_status is not None:
            etree.SubElement(app_el, "ping", status=app.ping_status)
        uc = app.updatecheck
        if uc is None:
            continue
        uc_el = etree.SubElement(app_el, "updatecheck", status=uc.status)
        _set(uc_el, "PollInterval", uc.poll_interval)
        urls = etree.SubElement(uc_el, "urls")
        for url in uc.urls:
            etree.SubElement(urls, "url", codebase=url)
        for m in uc.manifests:
            m_el = etree.SubElement(uc_el, "manifest", version=m.version)
            pkgs = etree.SubElement(m_el, "packages")
            for p in m.packages:
                p_el = etree.SubElement(pkgs, "package", name=p.name)
                _set(p_el, "hash", p.hash)
                _set(p_el, "hash_sha256", p.hash_sha256)
                _set(p_el, "size", p.size)
                _set(p_el, "required", p.required)
            acts = etree.SubElement(m_el, "actions")
            for a in m.actions:
                a_el = etree.SubElement(acts, "action", event=a.event)
                _set(a_el, "sha256", a.sha256)
                _set(a_el, "DisplayVersion", a.display_version)
                _set(a_el, "IsDeltaPayload", a.is_delta_payload)
                _set(a_el, "DisablePayloadBackoff", a.disable_payload_backoff)
                _set(a_el, "MaxFailureCountPerUrl", a.max_failure_count_per_url)
                _set(a_el, "needsadmin", a.needsadmin)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --- harness -------------------------------------------------------------------


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=20000, help="calls per timing run")
    n = ap.parse_args().number

    parsed = parse_request(REQUEST, "text/xml")
    assert naive_parse_request(REQUEST) == parsed
    rendered = render_response(RESPONSE)
    assert parse_response(naive_render_response(RESPONSE)) == parse_response(rendered)

    rows = [
        (
            "parse_request",
            per_call_us(lambda: parse_request(REQUEST, "text/xml"), n),
            per_call_us(lambda: naive_parse_request(REQUEST), n),
        ),
        (
            "render_response",
            per_call_us(lambda: render_response(RESPONSE), n),
            per_call_us(lambda: naive_render_response(RESPONSE), n),
        ),
        ("parse_response", per_call_us(lambda: parse_response(rendered), n), None),
        ("render_request", per_call_us(lambda: render_request(parsed), n), None),
    ]
    print(f"{'operation':<18}{'wellcar µs':>12}{'naive µs':>12}{'ratio':>8}")
    for name, ours, naive in rows:
        naive_s = f"{naive:12.1f}" if naive is not None else f"{'-':>12}"
        ratio_s = f"{ours / naive:8.2f}" if naive is not None else f"{'-':>8}"
        print(f"{name:<18}{ours:12.1f}{naive_s}{ratio_s}")
    check_in = rows[0][1] + rows[1][1]
    print(f"check-in codec cost (parse_request + render_response): {check_in:.1f} µs")


if __name__ == "__main__":
    main()
