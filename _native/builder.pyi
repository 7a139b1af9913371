"""Stubs for the ring builder kernel (see ring._builder_kernels for the contract)."""

import numpy as np
import numpy.typing as npt

def place_replicas(
    assign: npt.NDArray[np.int32],
    parts: npt.NDArray[np.int32],
    zone_start: npt.NDArray[np.int32],
    host_start: npt.NDArray[np.int32],
    dev_start: npt.NDArray[np.int32],
    dev_host: npt.NDArray[np.int32],
    host_zone: npt.NDArray[np.int32],
    zone_region: npt.NDArray[np.int32],
    cap_g: npt.NDArray[np.int32],
    cap_z: npt.NDArray[np.int32],
    cap_h: npt.NDArray[np.int32],
    cap_d: npt.NDArray[np.int32],
    nact_g: npt.NDArray[np.int32],
    nact_z: npt.NDArray[np.int32],
    nact_h: npt.NDArray[np.int32],
    avail_g: npt.NDArray[np.int64],
    avail_z: npt.NDArray[np.int64],
    avail_h: npt.NDArray[np.int64],
    avail_d: npt.NDArray[np.int64],
    tb_g: npt.NDArray[np.int32],
    tb_z: npt.NDArray[np.int32],
    tb_h: npt.NDArray[np.int32],
    tb_d: npt.NDArray[np.int32],
) -> int: ...
