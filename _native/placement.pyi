import numpy as np
import numpy.typing as npt

def resource_fit(
    capacity: npt.NDArray[np.float64],
    used: npt.NDArray[np.int64],
    min_unit: npt.NDArray[np.int64],
    max_unit: npt.NDArray[np.int64],
    step: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    amounts: npt.NDArray[np.int64],
) -> npt.NDArray[np.uint8]: ...
def bits_match(
    bits: npt.NDArray[np.uint64], any_masks: npt.NDArray[np.uint64], forbid: npt.NDArray[np.uint64]
) -> npt.NDArray[np.uint8]: ...
def weigh(values: npt.NDArray[np.float64], multipliers: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
