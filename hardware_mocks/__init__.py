"""mmmelab.hardware_mocks"""
