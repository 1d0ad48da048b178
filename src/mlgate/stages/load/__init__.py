"""The load stage: a model server's latency under load, alone or against its champion."""
