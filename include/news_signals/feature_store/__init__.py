"""news_signals.feature_store"""
