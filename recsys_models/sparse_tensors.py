"""scipy.sparse to torch sparse conversion shared by the closed-form and ALS families."""

import warnings

import numpy as np
import scipy.sparse as sp
import torch


def torch_csr(matrix: sp.spmatrix, device: str | torch.device = "cpu") -> torch.Tensor:
    """A float32 torch sparse CSR tensor of `matrix` on `device`.

    Indices are int32 when they fit: torch's CPU sparse kernels run about twice as fast on them.
    """
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    index_type = np.int32 if max(matrix.nnz, *matrix.shape) < np.iinfo(np.int32).max else np.int64
    with warnings.catch_warnings():  # torch calls its CSR support beta on first use; the kernels used here are stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        tensor = torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(index_type)),
            torch.from_numpy(matrix.indices.astype(index_type)),
            torch.from_numpy(matrix.data.astype(np.float32)),
            size=matrix.shape,
            check_invariants=False,
        )
    return tensor.to(device)
