"""PostgreSQL's real job: documents with embeddings, searched by cosine."""

import shlex
import urllib.parse

SEARCH = "http://127.0.0.1:8000/v1/search"


def _search(http_get, query, k=5):
    status, body = http_get(f"{SEARCH}?{urllib.parse.urlencode({'q': query, 'k': k})}")
    assert status == 200, f"/v1/search answered {status}: {body}"
    return body["data"]


def test_the_document_stored_before_the_redeploy_is_found_first(http_get):
    hits = _search(http_get, "a marker document that survives redeploys")
    assert hits, "search found nothing"
    assert hits[0]["title"] == "side-effect-marker", f"top hit is {hits[0]['title']!r}"


def test_seeded_documents_were_embedded_and_are_searchable(http_get, psql):
    (missing,) = psql("SELECT count(*) FROM documents WHERE embedding IS NULL")[0]
    assert missing == "0", f"{missing} documents still lack an embedding after start-up"
    hits = _search(http_get, "anything", k=50)
    (total,) = psql("SELECT count(*) FROM documents")[0]
    assert len(hits) == int(total), "every document should be ranked"
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True), "results must be best first"


# The deployed code's own search statement and settings (src/database/documents.py), planned by
# the deployed PostgreSQL: EXPLAIN, not a copy of the SQL, so a change to either is seen here.
EXPLAIN_SEARCH = """
from sqlalchemy import text
from src.database.documents import search_settings, search_sql
from src.database.session import create_engine_from_settings
from src.settings import Settings
import numpy as np

engine = create_engine_from_settings(Settings.from_env())
query = np.zeros(384, dtype=np.float32); query[0] = 1.0
with engine.begin() as connection:
    params = search_settings(connection, query, "any-model", 10, None)
    plan = connection.execute(text("EXPLAIN " + search_sql(384).text), params).all()
print("\\n".join(row[0] for row in plan))
"""


def test_the_deployed_search_is_served_by_the_hnsw_index(sh, serving):
    plan = sh(f"docker exec {serving} python -c {shlex.quote(EXPLAIN_SEARCH)}")
    assert "Index Scan using ix_documents_embedding_vector_384" in plan, (
        f"/v1/search does not use the HNSW index; the plan:\n{plan}"
    )
