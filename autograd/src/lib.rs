//! fym-autograd: tensors on a device, a tape of recorded ops, backward, parameters, AdamW.
