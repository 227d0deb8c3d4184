"""Content-based filtering from item side information."""

from recsys_models.content.tfidf import ContentTFIDF, ContentTFIDFConfig

__all__ = ["ContentTFIDF", "ContentTFIDFConfig"]
