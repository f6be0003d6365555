import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def world():
    from vlmlearn.data import ShapesWorld

    return ShapesWorld(seed=0, image_size=32)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (small models run faster without thread hand-offs), then as it was."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
