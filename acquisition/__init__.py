"""mmmelab.acquisition"""
