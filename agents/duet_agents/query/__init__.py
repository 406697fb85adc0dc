"""The query agent: answers questions in English over a platform's data, read-only."""
