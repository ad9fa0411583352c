"""Domain packs: medical, legal, finance and general (found by name through the
``slm.domains`` entry points, so ``assistant`` never imports this package)."""

from domains.packs import FINANCE, GENERAL, LEGAL, MEDICAL

__all__ = ["FINANCE", "GENERAL", "LEGAL", "MEDICAL"]
