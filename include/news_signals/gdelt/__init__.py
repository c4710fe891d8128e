"""news_signals.gdelt"""
