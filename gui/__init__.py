"""mmmelab.gui"""
