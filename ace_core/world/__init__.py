"""The scenes world: a synthetic multimodal generator that stays distinct at 100k items.

Pictures of several objects with their own attributes and places, sounds made of sequences of
events, videos of several objects each moving its own way; captions from paraphrase
templates and synonyms (``captions``). ``corpus`` streams a corpus of any size to disk and
measures how many items share their full description. The older, smaller world
(``ace_core.synth``, ``ace sample-corpus --world classic``) stays for tests that need it.
"""

from ace_core.world.corpus import draw_item, write_world_corpus

__all__ = ["draw_item", "write_world_corpus"]
