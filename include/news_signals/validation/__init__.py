"""news_signals.validation"""
