"""vlmlearn.source: the package's code as a notebook prints it, read from the file that runs."""
import re
from pathlib import Path

import pytest

from vlmlearn.mae import MAEEncoder, MaskedAutoencoder, random_masking
from vlmlearn.source import show_source, source

ROOT = Path(__file__).resolve().parents[1]


def test_each_member_is_the_files_own_lines_under_a_header_that_says_where():
    text = source(MaskedAutoencoder, "decode", "forward")
    headers = re.findall(r"^# (\S+), lines (\d+)-(\d+): (\S+)$", text, flags=re.M)
    assert [h[3] for h in headers] == ["MaskedAutoencoder.decode", "MaskedAutoencoder.forward"]
    for path, start, end, name in headers:
        lines = (ROOT / path).read_text().splitlines()[int(start) - 1:int(end)]
        assert lines[0].strip().startswith(f"def {name.split('.')[-1]}(")
        body = "\n".join(line[4:] for line in lines)  # methods are printed dedented by one level
        assert body in text


def test_a_whole_class_or_function_and_a_static_method():
    assert source(random_masking).splitlines()[1].startswith("def random_masking(")
    assert "class MAEEncoder(nn.Module):" in source(MAEEncoder)
    assert "def random_masking(" in source(MAEEncoder, "masking")  # staticmethod(random_masking)


def test_bad_names_say_what_exists(capsys):
    with pytest.raises(ValueError, match=r"defines no method 'forwrd'.*'decode', 'forward'"):
        source(MaskedAutoencoder, "forwrd")
    with pytest.raises(ValueError, match="is not a class"):
        source(random_masking, "forward")
    show_source(MaskedAutoencoder, "forward")
    assert "loss = (per_patch * mask).sum()" in capsys.readouterr().out


def test_a_decorated_function_is_read_from_its_own_file():
    """bootstrap_captions runs under @torch.no_grad(), whose wrapper lives in torch: the header must still name
    vlmlearn/capfilt.py and the lines that hold the function."""
    from vlmlearn.capfilt import bootstrap_captions

    text = source(bootstrap_captions)
    header, body = text.split("\n", 1)
    assert header.startswith("# vlmlearn/capfilt.py, lines ") and "def bootstrap_captions(" in body
    start, end = map(int, header.split("lines ")[1].split(":")[0].split("-"))
    lines = (ROOT / "vlmlearn" / "capfilt.py").read_text().splitlines()[start - 1:end]
    assert "\n".join(lines) == body.rstrip("\n")
