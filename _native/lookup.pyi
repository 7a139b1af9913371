from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

def xxh64(data: bytes | bytearray | memoryview, seed: int = 0) -> int: ...
def partitions_bulk(
    names: list[Any], part_power: int, seed: int, fallback: Callable[[Any], bytes]
) -> npt.NDArray[np.int64]: ...
def primaries_bulk(table: npt.NDArray[np.int32], parts: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]: ...
def handoff_order(
    table: npt.NDArray[np.int32],
    dev_region: npt.NDArray[np.int32],
    dev_zone: npt.NDArray[np.int32],
    dev_host: npt.NDArray[np.int32],
    candidates: npt.NDArray[np.int32],
    part: int,
    start: int,
    inc: int,
) -> npt.NDArray[np.int32]: ...
