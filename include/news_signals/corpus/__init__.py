"""news_signals.corpus"""
