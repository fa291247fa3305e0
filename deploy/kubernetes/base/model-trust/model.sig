REPLACE ME: the model's OpenSSF signature bundle, from `tcme model sign`.
