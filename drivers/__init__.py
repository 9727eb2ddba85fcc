"""mmmelab.drivers"""
