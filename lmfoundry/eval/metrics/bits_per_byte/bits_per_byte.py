r"""Bits per byte, word and byte perplexity (as lm-eval's rolling-log-likelihood tasks, e.g.
``wikitext``, define them), loss per token and token perplexity, from summed negative
log-likelihoods.

Bits per byte divides the total loss (in bits) by the UTF-8 bytes of the text it was computed on,
not by the tokens, so models with different tokenizers are compared on the same footing. lm-eval:
``bits_per_byte = -sum(ll) / sum(bytes) / ln 2``, ``byte_perplexity = exp(-sum(ll) / sum(bytes))``,
``word_perplexity = exp(-sum(ll) / sum(words))`` with words counted as ``len(re.split(r"\s+", text))``.
"""

import math

import datasets
import evaluate

_DESCRIPTION = "Bits per UTF-8 byte, mean loss per token (nats) and perplexity."
_KWARGS_DESCRIPTION = r"""
Args:
    loss_nats (list of float): summed negative log-likelihood (nats) of each text or window.
    num_tokens (list of int): tokens scored in each.
    num_bytes (list of int): UTF-8 bytes of the text those tokens cover.
    num_words (list of int): words of that text (lm-eval: ``len(re.split(r"\s+", text))``).
Returns:
    bits_per_byte, byte_perplexity, word_perplexity, loss (nats per token), perplexity (exp of loss).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BitsPerByte(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "loss_nats": datasets.Value("float64"),
                    "num_tokens": datasets.Value("int64"),
                    "num_bytes": datasets.Value("int64"),
                    "num_words": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, loss_nats, num_tokens, num_bytes, num_words):
        total_nats, tokens, nbytes = float(sum(loss_nats)), int(sum(num_tokens)), int(sum(num_bytes))
        words = int(sum(num_words))
        if tokens == 0 or nbytes == 0 or words == 0:
            raise ValueError("bits_per_byte needs at least one scored token, one byte and one word of text")
        loss = total_nats / tokens
        return {
            "bits_per_byte": total_nats / math.log(2) / nbytes,
            "byte_perplexity": math.exp(min(total_nats / nbytes, 700.0)),
            "word_perplexity": math.exp(min(total_nats / words, 700.0)),
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
        }
