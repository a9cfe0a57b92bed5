/// The scalar type of every tensor. Float32 for training; a build with `CNN_FLOAT64`
/// (package environment `CNN_TRAIN_FLOAT64=1`) computes in float64, so the golden tests can
/// tell our arithmetic apart from float32 rounding on ill-conditioned models.
#if CNN_FLOAT64
public typealias Real = Double
#else
public typealias Real = Float
#endif
