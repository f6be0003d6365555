import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def world():
    from vlmlearn.data import ShapesWorld

    return ShapesWorld(seed=0, image_size=32)
