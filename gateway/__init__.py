"""The HTTP gateway: everything that does I/O (HTTP, upstream calls, files, databases) lives in this package.

litellm reads these two variables when it is imported: keep its price table local and never phone home.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
