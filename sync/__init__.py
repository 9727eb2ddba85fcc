"""mmmelab.sync"""
