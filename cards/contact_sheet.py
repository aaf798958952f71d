"""Kept so ``streetsynth.cards.contact_sheet`` imports keep working: the pictures live in the core,
:mod:`streetsynth.contact_sheet`, where stages and cards both use them without importing each other."""

from streetsynth.contact_sheet import CLASS_COLORS, Tile, class_counts, fit_text, overlay, render_sheet

__all__ = ["CLASS_COLORS", "Tile", "class_counts", "fit_text", "overlay", "render_sheet"]
