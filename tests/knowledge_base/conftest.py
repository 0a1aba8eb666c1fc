"""Knowledge-base tests keep their built indexes in private folders."""

from tests.knowledge_base.helpers import private_index_dir  # noqa: F401 - an autouse fixture
