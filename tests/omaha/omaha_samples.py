"""Omaha messages shared by the omaha tests (byte-exact copies of real traffic)."""

from __future__ import annotations

# The reference notes' "Example request (trimmed)" (flatcar-update-delivery.md
# §1), verbatim but split for line length. The "…" are part of the sample and
# exercise non-ASCII attribute values.
REFERENCE_REQUEST = (
    '<request protocol="3.0" version="update_engine-0.4.10" installsource="scheduler" '
    'ismachine="1">\n'
    ' <os version="Chateau" platform="CoreOS" sp="4459.2.1_x86_64"/>\n'
    ' <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="4459.2.1" track="stable" '
    'bootid="{b3c…}"\n'
    '      oem="qemu" alephversion="4230.2.0" machineid="9ce7…" board="amd64-usr" '
    'delta_okay="false">\n'
    '  <ping active="1"/><updatecheck/><event eventtype="3" eventresult="2" '
    'previousversion="4230.2.3"/>\n'
    " </app></request>\n"
).encode()

# What GetRequestXml() in flatcar/update_engine omaha_request_action.cc writes
# for a scheduled update check: declaration, 4-space indentation, explicit end
# tags, every <app> attribute present (several empty), a trailing space before
# '>' on <app>.
UPDATE_ENGINE_CHECK = b"""\
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

# Event-only request during an install: download started (13/1), no errorcode
# because the result is success.
UPDATE_ENGINE_EVENT = b"""\
<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" \
installsource="ondemandupdate" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="4459.2.1_aarch64"></os>
    <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="4459.2.1" track="beta" \
bootid="{0c4a1e4e-5f9c-4c11-9d8b-2f0e3c1a7b55}" oem="" oemversion="" alephversion="4459.2.1" \
machineid="0123456789abcdef0123456789abcdef" machinealias="db-1" lang="en-US" board="arm64-usr" \
hardware_class="" delta_okay="false" >
        <event eventtype="13" eventresult="1"></event>
    </app>
</request>
"""

# Error report: 3/0 with errorcode 268435490 = 34 | 1<<28 (invalid Omaha
# response, non-production SERVER), as seen in nebraska#371.
UPDATE_ENGINE_ERROR = UPDATE_ENGINE_EVENT.replace(
    b'<event eventtype="13" eventresult="1"></event>',
    b'<event eventtype="3" eventresult="0" errorcode="268435490"></event>',
)

# Ping-only request while UPDATED_NEED_REBOOT.
UPDATE_ENGINE_PING = UPDATE_ENGINE_EVENT.replace(
    b'<event eventtype="13" eventresult="1"></event>', b'<ping active="1"></ping>'
)
