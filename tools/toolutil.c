/* placeholder: shared helpers of the tools */
