"""Update payloads: CrAU framing, full and delta operations, signatures, streaming apply."""
