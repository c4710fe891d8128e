"""news_signals.registry"""
