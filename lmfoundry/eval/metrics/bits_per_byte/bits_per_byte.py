"""Bits per byte, loss per token and perplexity from summed negative log-likelihoods.

Bits per byte divides the total loss (in bits) by the UTF-8 bytes of the text it was computed on,
not by the tokens, so models with different tokenizers are compared on the same footing.
"""

import math

import datasets
import evaluate

_DESCRIPTION = "Bits per UTF-8 byte, mean loss per token (nats) and perplexity."
_KWARGS_DESCRIPTION = """
Args:
    loss_nats (list of float): summed negative log-likelihood (nats) of each text or window.
    num_tokens (list of int): tokens scored in each.
    num_bytes (list of int): UTF-8 bytes of the text those tokens cover.
Returns:
    bits_per_byte, loss (nats per token), perplexity (exp of loss).
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
                }
            ),
        )

    def _compute(self, loss_nats, num_tokens, num_bytes):
        total_nats, tokens, nbytes = float(sum(loss_nats)), int(sum(num_tokens)), int(sum(num_bytes))
        if tokens == 0 or nbytes == 0:
            raise ValueError("bits_per_byte needs at least one scored token and one byte of text")
        loss = total_nats / tokens
        return {
            "bits_per_byte": total_nats / math.log(2) / nbytes,
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
        }
