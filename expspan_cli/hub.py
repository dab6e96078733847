"""Whether the Hugging Face hub can be reached, found out once and fast: offline, a hub id is answered from the
local cache or with the offline hint at once, not after the hub client's retries."""

from __future__ import annotations

import os
import socket

_checked = False


def offline_unless_reachable(timeout: float = 2.0) -> bool:
    """True when the hub answers; else switch this process to offline mode (HF_HUB_OFFLINE) and return False."""
    global _checked
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE:
        return False
    if _checked:
        return True
    _checked = True
    endpoint = hub.ENDPOINT.removeprefix("https://").removeprefix("http://").split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        socket.create_connection((host, int(port or 443)), timeout=timeout).close()
        return True
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"  # for the processes this one starts
        hub.HF_HUB_OFFLINE = True  # the hub client read the variable when it was imported
        return False
