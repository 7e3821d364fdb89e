import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tests train tiny networks: one intra-op thread is fastest for them, and
    extra threads stall on a busy 2-core machine. One thread also makes the
    floating-point reductions deterministic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
