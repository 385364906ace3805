"""Resolving a config's references: `replace` swaps the config, `merge` children merge in
(child values win), recursively, and certificate authorities are loaded for later fetches."""

from __future__ import annotations

from dataclasses import replace

from wellcar.ignition.errors import IgnitionError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.merge import merge
from wellcar.ignition.parse import parse_config
from wellcar.ignition.report import Report
from wellcar.ignition.types import Config, ConfigReferences

MAX_DEPTH = 10  # configs referring to each other in a loop must end, not hang the boot


def resolve(config: Config, fetcher: Fetcher, report: Report, depth: int = 0) -> Config:
    """The config with every merge/replace reference fetched, parsed and applied."""
    if depth > MAX_DEPTH:
        raise IgnitionError(f"configs refer to each other more than {MAX_DEPTH} levels deep")
    fetcher.configure(config.ignition)
    for i, ca in enumerate(config.ignition.security.tls.certificate_authorities):
        fetcher.add_ca(fetcher.fetch(ca, f"$.ignition.security.tls.certificateAuthorities[{i}]"))
    refs = config.ignition.config
    if refs.replace.source:  # an empty source is none, as in Ignition
        data = fetcher.fetch(refs.replace, "$.ignition.config.replace")
        child = parse_config(data, origin=f"config from {refs.replace.source[:80]}")
        report.extend(child.report)
        return resolve(child.config, fetcher, report, depth + 1)
    result = replace(config, ignition=replace(config.ignition, config=ConfigReferences()))
    for i, ref in enumerate(refs.merge):
        data = fetcher.fetch(ref, f"$.ignition.config.merge[{i}]")
        child = parse_config(data, origin=f"config from {(ref.source or '')[:80]}")
        report.extend(child.report)
        result = merge(result, resolve(child.config, fetcher, report, depth + 1))
    return result
