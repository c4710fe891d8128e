"""Airflow Asset identities shared by the producing and consuming DAGs (plain strings: no Airflow import)."""

DAILY_ARTICLES_ASSET_NAME = "news_signals_daily_articles"
DAILY_ARTICLES_ASSET_URI = "file:///news-signals/articles"
