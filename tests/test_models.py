"""Where models load from: the GGUF conversion's one-time reading of the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curation.models import gguf_read_once


def tiny_gguf(path: Path) -> Path:
    """A GGUF file with what makes parsing slow in a real one: a string array (a vocabulary),
    an int array, and tensors, one of them quantized."""
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(2)
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(300)] + ["Ünï"])
    writer.add_array("tokenizer.ggml.token_type", list(range(301)))
    writer.add_string("tokenizer.chat_template", "{{ messages }}")
    weights = np.linspace(-1, 1, 64 * 32, dtype=np.float32).reshape(64, 32)
    writer.add_tensor("token_embd.weight", weights)
    quantized = gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_file_is_parsed_once_in_the_block_as_gguf_parses_it_and_the_patches_go_after(
    tmp_path: Path,
) -> None:
    import gguf

    path = tiny_gguf(tmp_path / "tiny.gguf")
    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    plain = gguf.GGUFReader(path)
    with pytest.raises(RuntimeError, match="mid-conversion"), gguf_read_once():
        reader = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is reader  # parsed once, by whatever path it is named
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
        # The values gguf's own reader parses, field by field and tensor by tensor.
        assert isinstance(reader, reader_class)
        assert list(reader.fields) == list(plain.fields)
        for name, field in plain.fields.items():
            assert reader.fields[name].contents() == field.contents(), name
            assert reader.fields[name].types == field.types
        assert [t.name for t in reader.tensors] == [t.name for t in plain.tensors]
        for tensor, expected in zip(reader.tensors, plain.tensors, strict=True):
            assert tensor.tensor_type == expected.tensor_type
            assert np.array_equal(tensor.data, expected.data)
            assert np.array_equal(
                gguf.dequantize(tensor.data, tensor.tensor_type),
                gguf.dequantize(expected.data, expected.tensor_type),
            )
        raise RuntimeError("mid-conversion")
    # An error in the block leaves gguf as it was.
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader_class, name_map)
    assert gguf.GGUFReader(path) is not gguf.GGUFReader(path)
