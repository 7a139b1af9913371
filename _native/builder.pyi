"""Stubs for the ring builder kernels (see ring._builder_kernels for the contracts)."""

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

def place_replicas(
    assign: I32, parts: I32,
    zone_start: I32, host_start: I32, dev_start: I32,
    dev_host: I32, host_zone: I32, zone_region: I32,
    cap_g: I32, cap_z: I32, cap_h: I32, cap_d: I32,
    nact_g: I32, nact_z: I32, nact_h: I32,
    avail_g: I64, avail_z: I64, avail_h: I64, avail_d: I64,
    salt: int,
) -> int: ...
def move_replicas(
    assign: I32, parts: I32, free: I8, can_move: I8, excess: I64,
    tex_g: I64, tex_z: I64, tex_h: I64,
    zone_start: I32, host_start: I32, dev_start: I32,
    dev_host: I32, host_zone: I32, zone_region: I32,
    cap_g: I32, cap_z: I32, cap_h: I32, cap_d: I32,
    avail_g: I64, avail_z: I64, avail_h: I64, avail_d: I64,
    salt: int,
) -> int: ...
def gather_dispersion(
    assign: I32, parts: I32, can_move: I8, excess: I64,
    dev_host: I32, host_zone: I32, zone_region: I32,
    cap_g: I32, cap_z: I32, cap_h: I32, cap_d: I32,
) -> int: ...
def tier_excess(
    assign: I32, dev_host: I32, host_zone: I32, zone_region: I32,
    lim_g: I32, lim_z: I32, lim_h: I32, lim_d: I32,
) -> I32: ...
