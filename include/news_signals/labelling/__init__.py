"""news_signals.labelling"""
