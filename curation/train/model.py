"""The model to fine-tune and its processor: a Hub or local VLM (Idefics3 / SmolVLM, Qwen2-VL), or
a random-init Idefics3 built from a config with the bundled SmolLM2 tokenizer (no download);
then LoRA / DoRA / QLoRA on the language model, or full fine-tuning."""

from __future__ import annotations

import copy
import functools
import importlib.util
from typing import Any

from curation.config import ConfigError
from curation.models import loadable, resolve_model
from curation.train.config import TINY_RANDOM, RandomInitConfig, TrainConfig
from curation.train.images import IDEFICS3_TYPES, QWEN2VL_TYPES

# Idefics3's image tokens: tile wrappers, the image placeholder, tile positions, the thumbnail tag.
IDEFICS3_TOKENS = [
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
]

# SmolVLM's conversation format: "User:<image>question<end_of_utterance>\nAssistant: answer...".
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% else %}<image>{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

# LoRA on the language model's attention and MLP projections; `q_proj` alone also names the
# vision tower's layers, hence the path.
_PROJECTIONS = r"\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)"
LORA_TARGETS = {
    **{t: r".*\.text_model" + _PROJECTIONS for t in IDEFICS3_TYPES},
    **{t: r".*\.language_model" + _PROJECTIONS for t in QWEN2VL_TYPES},
}
VISION_PREFIXES = ("model.vision_model.", "model.connector.", "model.visual.")


@functools.cache
def _bundled_tokenizer() -> Any:
    from transformers import AutoTokenizer

    location = loadable(resolve_model("bundled"))
    return AutoTokenizer.from_pretrained(location.path, gguf_file=location.gguf_file)


def random_init_processor(spec: RandomInitConfig) -> Any:
    """An Idefics3 processor: the bundled SmolLM2 tokenizer plus the image tokens, tiles of
    `spec.tile_size` px, SmolVLM's chat template."""
    import transformers

    if (spec.tile_size // spec.patch_size) % spec.scale_factor:
        raise ConfigError(
            "model.random_init: patches per tile side (tile_size // patch_size) must be a "
            "multiple of scale_factor"
        )
    tokenizer = copy.deepcopy(_bundled_tokenizer())  # loading the GGUF takes ~10 s: once
    tokenizer.add_special_tokens({"additional_special_tokens": IDEFICS3_TOKENS})
    backend = (
        transformers.Idefics3ImageProcessor
        if importlib.util.find_spec("torchvision")
        else transformers.Idefics3ImageProcessorPil
    )
    image_processor = backend(
        size={"longest_edge": spec.max_image_side},
        max_image_size={"longest_edge": spec.tile_size},
    )
    tokens_per_tile = (spec.tile_size // spec.patch_size // spec.scale_factor) ** 2
    return transformers.Idefics3Processor(
        image_processor,
        tokenizer,
        image_seq_len=tokens_per_tile,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def random_init_model(
    spec: RandomInitConfig, processor: Any, seed: int = 0, attn_implementation: str | None = None
) -> Any:
    """A random-init Idefics3 (SigLIP-style vision tower + Llama text model) of the given sizes."""
    import torch
    from transformers import AutoModelForImageTextToText, Idefics3Config

    tokenizer = processor.tokenizer
    config = Idefics3Config(
        vision_config={
            "hidden_size": spec.vision_hidden_size,
            "intermediate_size": spec.vision_intermediate_size,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.vision_heads,
            "image_size": spec.tile_size,
            "patch_size": spec.patch_size,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.intermediate_size,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "num_key_value_heads": spec.kv_heads,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 16384,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        scale_factor=spec.scale_factor,
        image_token_id=processor.image_token_id,
    )
    torch.manual_seed(seed)
    return AutoModelForImageTextToText.from_config(
        config, attn_implementation=attn_implementation or "sdpa"
    )


def load_model(config: TrainConfig, bf16: bool) -> tuple[Any, Any]:
    """The model (fine-tune setup applied) and its processor."""
    spec = config.model
    if spec.name == TINY_RANDOM:
        processor = random_init_processor(spec.random_init)
        model = random_init_model(
            spec.random_init, processor, config.seed, spec.attn_implementation
        )
    else:
        model, processor = _load_pretrained(config, bf16)
    if model.config.model_type not in LORA_TARGETS:
        raise ConfigError(
            f"model.name: {spec.name} is a '{model.config.model_type}' model; "
            f"supported: {', '.join(LORA_TARGETS)}"
        )
    if processor.tokenizer.pad_token_id is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    model.config.use_cache = False
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return _setup_finetune(model, config), processor


def _load_pretrained(config: TrainConfig, bf16: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    spec = config.model
    kwargs: dict[str, Any] = {"revision": spec.revision}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    if config.lora.qlora:
        if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
            raise ConfigError("lora.qlora needs a CUDA GPU and `pip install bitsandbytes`")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    # LoRA keeps the frozen base in bf16; full fine-tuning keeps fp32 master weights under autocast.
    kwargs["dtype"] = torch.bfloat16 if bf16 and config.finetune == "lora" else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(spec.name, revision=spec.revision)
        model = AutoModelForImageTextToText.from_pretrained(spec.name, **kwargs)
    except OSError as exc:
        raise ConfigError(f"model.name: cannot load {spec.name}: {exc}") from exc
    return model, processor


def _setup_finetune(model: Any, config: TrainConfig) -> Any:
    if config.finetune == "full":
        if config.model.freeze_vision:
            for name, parameter in model.named_parameters():
                if name.startswith(VISION_PREFIXES):
                    parameter.requires_grad_(False)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    lora = config.lora
    if lora.qlora:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.model.gradient_checkpointing
        )
    target = lora.target_modules or LORA_TARGETS[model.config.model_type]
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_dora=lora.dora,
        target_modules=target,
    )
    try:
        return get_peft_model(model, peft_config)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules: {exc}") from exc


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def training_flops(model, batches: list) -> float:
    """Useful training FLOPs of collated batches (`collate.Batch`) on an Idefics3-family model:
    per sample of s tokens 6 x N_text x s + 6 x L x h x s^2 (causal attention), per image tile
    of P patches 6 x N_vision x P + 12 x L_v x h_v x P^2 plus the connector's 6 x N_conn x P /
    scale^2; the input embedding, padding and attention across packed samples are not counted.
    The MFU of benchmarks/bench_train.py and benchmarks/gpu_check.py."""
    config = model.config
    text = vision = connector = 0
    for name, parameter in model.named_parameters():
        if "embed_tokens" in name:
            continue
        if "vision_model" in name:
            vision += parameter.numel()
        elif "connector" in name:
            connector += parameter.numel()
        else:  # text layers, final norm, lm_head
            text += parameter.numel()
    vc, tc = config.vision_config, config.text_config
    patches = (vc.image_size // vc.patch_size) ** 2
    tokens_per_tile = patches // config.scale_factor**2
    per_tile = (
        6 * vision * patches
        + 12 * vc.num_hidden_layers * vc.hidden_size * patches**2
        + 6 * connector * tokens_per_tile
    )
    total = 0.0
    for batch in batches:
        for length in batch.lengths:
            total += 6 * text * length + 6 * tc.num_hidden_layers * tc.hidden_size * length**2
        image_tokens = int((batch.inputs["input_ids"] == config.image_token_id).sum())
        total += per_tile * image_tokens / tokens_per_tile
    return total
