"""Chat formatting, the one place where messages become the text a model is trained on.

Base models (Mistral-7B-v0.1, tiny-mistral) ship no chat template; instruction tuning then
teaches the template we apply, so it must be the same one at training, generation and
evaluation time. We default to Mistral's own [INST] format, with tool definitions, tool calls
and tool results written as Mistral's v3 template writes them.

mlx-lm's `text` rows are the exception: they are trained on the raw text, with no template.
"""

from __future__ import annotations

from typing import Any

MISTRAL_INST_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\\n\\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{% if message['role'] == 'user' %}"
    "{% if tools and loop.first %}"
    "{{ '[AVAILABLE_TOOLS] ' + (tools | tojson) + '[/AVAILABLE_TOOLS]' }}"
    "{% endif %}"
    "{{ '[INST] ' + (system if loop.first else '') + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] or '' }}"
    "{% if message.tool_calls %}{{ '[TOOL_CALLS] ' + (message.tool_calls | tojson) }}{% endif %}"
    "{{ eos_token }}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '[TOOL_RESULTS] ' + (message['content'] | string) + '[/TOOL_RESULTS]' }}"
    "{% endif %}"
    "{% endfor %}"
)


def hf_tokenizer(tokenizer: Any) -> Any:
    """The Hugging Face tokenizer inside mlx-lm's TokenizerWrapper (or the object itself)."""
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    # Only the wrapper is unwrapped: a transformers tokenizer's own `_tokenizer` is the Rust one.
    return tokenizer._tokenizer if isinstance(tokenizer, TokenizerWrapper) else tokenizer


def ensure_chat_template(tokenizer: Any, template: str | None = None) -> Any:
    """Install `template` (or the Mistral default) when the tokenizer has no chat template.

    A configured template always wins, so a user can override a model's own.
    """
    inner = hf_tokenizer(tokenizer)
    if template is not None:
        inner.chat_template = template
    elif not getattr(inner, "chat_template", None):
        inner.chat_template = MISTRAL_INST_TEMPLATE
    return tokenizer


def prompt_tokens(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[Any] | None = None
) -> list[int]:
    """Token ids of the conversation so far, ending where the assistant starts to answer."""
    return list(
        hf_tokenizer(tokenizer).apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )


def conversation_tokens(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[Any] | None = None
) -> tuple[list[int], int]:
    """Token ids of a whole conversation, and where its final assistant turn begins.

    `tools` are the row's tool definitions (mlx-lm's `tools` field), passed to the template.
    The offset is the length of the prompt part, which mask-prompt training leaves out of
    the loss (mlx-lm's ChatDataset computes it the same way).
    """
    inner = hf_tokenizer(tokenizer)
    full = list(
        inner.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=False)
    )
    # A lone assistant turn has no prompt to mask.
    trains_on_last_turn = messages[-1]["role"] == "assistant" and len(messages) > 1
    offset = len(prompt_tokens(tokenizer, messages[:-1], tools)) if trains_on_last_turn else 0
    return full, offset


def text_tokens(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a `text` row as mlx-lm's TextDataset makes them: the tokenizer's own
    encoding (with its BOS), and an EOS appended unless the text already ends with one."""
    inner = hf_tokenizer(tokenizer)
    ids = list(inner.encode(text))
    if not ids or ids[-1] != inner.eos_token_id:
        ids.append(inner.eos_token_id)
    return ids
