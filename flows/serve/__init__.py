"""`ace serve`: the search service and web page over a store.

- ``app``: the FastAPI app (search, items, versions, audit, eval, health, the page) and
  ``serve`` (uvicorn);
- ``holder``: the served version, swapped in the background when LATEST moves;
- ``batcher``: concurrent searches micro-batched into one beam search;
- ``examples``: search by an uploaded file and by an indexed item;
- ``media``: originals, playable renditions and thumbnails of indexed items;
- ``guard``: the token, header deadlines and what a response may say;
- ``results``: a result's media URLs and query errors as HTTP errors.
"""
