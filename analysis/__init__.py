"""mmmelab.analysis"""
