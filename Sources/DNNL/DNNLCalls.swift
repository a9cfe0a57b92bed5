// Every call into oneDNN's C API lives in this file, and it is the only file that imports
// CDNNL. The API is oneDNN 2.x's (`*_desc_init` + `dnnl_primitive_desc_create`, memory
// descriptors as C values); 3.x replaced both with `*_primitive_desc_create` functions and
// opaque descriptor handles, so a port rewrites this file and leaves the rest alone.
//
// Swift sees the C API this way: C enums are structs with global constants
// (`dnnl_f32`), `unsigned` flag parameters need `.rawValue`, handles are `OpaquePointer`,
// `DNNL_MEMORY_ALLOCATE` does not import (every memory object here wraps a caller's
// buffer), and `dnnl_dims_t` parameters take `[Int64]`.

internal import CDNNL

/// The C descriptor a `MemoryDescriptor` wraps (a plain value in oneDNN 2.x).
typealias RawMemoryDescriptor = dnnl_memory_desc_t

/// Thin, throwing wrappers over oneDNN's C functions, in the vocabulary of this module.
enum OneDNN {
    /// Throws a `DNNLError` naming `call` and oneDNN's status when `status` is not success.
    ///
    /// `call` is an autoclosure so that the success path builds no string.
    static func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws {
        guard status != dnnl_success else { return }
        let reason = String(cString: dnnl_status2str(status))
        let hint = status == dnnl_unimplemented
            ? " (oneDNN \(version) has no implementation for this combination of shapes, data types and layouts on this CPU)"
            : ""
        throw DNNLError("\(call()) failed: \(reason)\(hint)")
    }

    /// The library's version, e.g. "2.6.3".
    static var version: String {
        let v = dnnl_version().pointee
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    // MARK: - Engine, stream, threads, CPU

    /// Creates the CPU engine and an in-order stream on it.
    static func makeCPUEngineAndStream() throws -> (engine: OpaquePointer, stream: OpaquePointer) {
        var engine: OpaquePointer?
        try check(dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create(cpu, 0)")
        var stream: OpaquePointer?
        try check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue),
                  "dnnl_stream_create(cpu)")
        return (engine!, stream!)
    }

    /// Waits for everything submitted to `stream` (a no-op for the CPU's in-order stream,
    /// kept so the contract is explicit).
    static func wait(_ stream: OpaquePointer) throws {
        try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
    }

    /// OpenMP threads oneDNN's parallel regions use when started from this thread.
    static var ompThreads: Int {
        get { Int(omp_get_max_threads()) }
        set { omp_set_num_threads(Int32(max(1, newValue))) }
    }

    /// The instruction set oneDNN dispatches to (capped by `DNNL_MAX_CPU_ISA` if set).
    static var effectiveISA: String { String(cString: dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa())) }

    /// Whether oneDNN may use native AVX512_BF16 instructions (the ISA value is a superset mask).
    static var hasNativeBF16: Bool { effectiveISAIncludes(dnnl_cpu_isa_avx512_core_bf16) }

    /// Whether oneDNN may use AVX-512 (core) instructions, which its bf16 kernels need at least.
    static var hasAVX512Core: Bool { effectiveISAIncludes(dnnl_cpu_isa_avx512_core) }

    private static func effectiveISAIncludes(_ isa: dnnl_cpu_isa_t) -> Bool {
        dnnl_get_effective_cpu_isa().rawValue & isa.rawValue == isa.rawValue
    }

    // MARK: - Memory descriptors

    private static func raw(_ type: DataType) -> dnnl_data_type_t {
        switch type {
        case .f32: return dnnl_f32
        case .bf16: return dnnl_bf16
        }
    }

    private static func raw(_ tag: FormatTag) -> dnnl_format_tag_t {
        switch tag {
        case .any: return dnnl_format_tag_any
        case .x: return dnnl_x
        case .nc: return dnnl_nc
        case .nchw: return dnnl_nchw
        case .nhwc: return dnnl_nhwc
        case .oihw: return dnnl_oihw
        case .goihw: return dnnl_goihw
        case .nChw8c: return dnnl_nChw8c
        case .nChw16c: return dnnl_nChw16c
        }
    }

    static func memoryDescriptor(dims: [Int], dataType: DataType, format: FormatTag) throws -> RawMemoryDescriptor {
        var md = dnnl_memory_desc_t()
        let dims64 = dims.map(Int64.init)
        try check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), dims64, raw(dataType), raw(format)),
                  "dnnl_memory_desc_init_by_tag(dims \(dims), \(dataType), \(format))")
        return md
    }

    /// A descriptor of the block `dims` at `offsets` inside `parent` (same layout and strides).
    static func submemory(of parent: RawMemoryDescriptor, dims: [Int], offsets: [Int]) throws -> RawMemoryDescriptor {
        var md = dnnl_memory_desc_t()
        var parent = parent
        try check(dnnl_memory_desc_init_submemory(&md, &parent, dims.map(Int64.init), offsets.map(Int64.init)),
                  "dnnl_memory_desc_init_submemory(dims \(dims), offsets \(offsets))")
        return md
    }

    static func isZero(_ md: RawMemoryDescriptor) -> Bool { md.ndims == 0 }

    /// `md` with another element type; strides count elements, so a layout carries over.
    static func changingDataType(_ md: RawMemoryDescriptor, to type: DataType) -> RawMemoryDescriptor {
        var md = md
        md.data_type = raw(type)
        return md
    }

    static func dims(_ md: RawMemoryDescriptor) -> [Int] {
        withUnsafeBytes(of: md.dims) { Array($0.bindMemory(to: Int64.self).prefix(Int(md.ndims))).map(Int.init) }
    }

    static func dataType(_ md: RawMemoryDescriptor) -> DataType? {
        switch md.data_type {
        case dnnl_f32: return .f32
        case dnnl_bf16: return .bf16
        default: return nil
        }
    }

    static func byteCount(_ md: RawMemoryDescriptor) -> Int {
        var md = md
        return dnnl_memory_desc_get_size(&md)
    }

    static func equal(_ lhs: RawMemoryDescriptor, _ rhs: RawMemoryDescriptor) -> Bool {
        var lhs = lhs, rhs = rhs
        return dnnl_memory_desc_equal(&lhs, &rhs) != 0
    }

    /// oneDNN's name for a layout: dimensions as letters from outermost to innermost,
    /// uppercase where blocked, then the inner blocks ("aBcd16b" is nChw16c, "abcd" is nchw).
    static func layoutName(_ md: RawMemoryDescriptor) -> String {
        switch md.format_kind {
        case dnnl_format_kind_undef: return "undef"
        case dnnl_format_kind_any: return "any"
        case dnnl_blocked: break
        default: return String(cString: dnnl_fmt_kind2str(md.format_kind))
        }
        let rank = Int(md.ndims)
        let blocking = md.format_desc.blocking
        let strides = withUnsafeBytes(of: blocking.strides) { Array($0.bindMemory(to: Int64.self).prefix(rank)) }
        let blocks = withUnsafeBytes(of: blocking.inner_blks) { Array($0.bindMemory(to: Int64.self).prefix(Int(blocking.inner_nblks))) }
        let blockAxes = withUnsafeBytes(of: blocking.inner_idxs) { Array($0.bindMemory(to: Int64.self).prefix(Int(blocking.inner_nblks))) }
        let letters = Array("abcdefghijkl")
        // Outermost first: larger stride first; equal strides (size-1 axes) keep axis order.
        let order = (0..<rank).sorted { strides[$0] != strides[$1] ? strides[$0] > strides[$1] : $0 < $1 }
        var name = order.map { axis in
            blockAxes.contains(Int64(axis)) ? String(letters[axis]).uppercased() : String(letters[axis])
        }.joined()
        for (block, axis) in zip(blocks, blockAxes) { name += "\(block)\(letters[Int(axis)])" }
        return name
    }

    // MARK: - Primitive descriptors

    /// Attributes every primitive here is created with: a user-managed scratchpad (so that
    /// executing allocates nothing) and, optionally, a ReLU post-op.
    private static func withAttributes<R>(fusedReLU: Bool = false, _ body: (OpaquePointer) throws -> R) throws -> R {
        var attributes: OpaquePointer?
        try check(dnnl_primitive_attr_create(&attributes), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        try check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user),
                  "dnnl_primitive_attr_set_scratchpad_mode(user)")
        if fusedReLU {
            var postOps: OpaquePointer?
            try check(dnnl_post_ops_create(&postOps), "dnnl_post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            try check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_relu, 0, 0), "dnnl_post_ops_append_eltwise(relu)")
            try check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "dnnl_primitive_attr_set_post_ops")
        }
        return try body(attributes!)
    }

    /// Creates a primitive descriptor from a 2.x operation descriptor.
    private static func primitiveDescriptor<Operation>(
        _ operation: inout Operation, fusedReLU: Bool = false, engine: OpaquePointer,
        hint: OpaquePointer? = nil, _ what: @autoclosure () -> String
    ) throws -> OpaquePointer {
        try withAttributes(fusedReLU: fusedReLU) { attributes in
            var pd: OpaquePointer?
            try check(withUnsafePointer(to: &operation) { dnnl_primitive_desc_create(&pd, $0, attributes, engine, hint) },
                      "dnnl_primitive_desc_create(\(what()))")
            return pd!
        }
    }

    private static func raw(_ algorithm: ConvolutionAlgorithm) -> dnnl_alg_kind_t {
        switch algorithm {
        case .direct: return dnnl_convolution_direct
        case .winograd: return dnnl_convolution_winograd
        case .auto: return dnnl_convolution_auto
        }
    }

    /// The stride, dilation (oneDNN's: 0 is dense) and padding arrays of a 2-D convolution.
    private static func spatial(_ g: ConvolutionGeometry) -> (strides: [Int64], dilation: [Int64], low: [Int64], high: [Int64]) {
        ([Int64(g.strideHeight), Int64(g.strideWidth)],
         [Int64(g.dilationHeight - 1), Int64(g.dilationWidth - 1)],
         [Int64(g.paddingTop), Int64(g.paddingLeft)],
         [Int64(g.paddingBottom), Int64(g.paddingRight)])
    }

    static func convolutionForward(
        _ g: ConvolutionGeometry, training: Bool, algorithm: ConvolutionAlgorithm, fusedReLU: Bool,
        source: MemoryDescriptor, weights: MemoryDescriptor, bias: MemoryDescriptor?, destination: MemoryDescriptor,
        engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_convolution_desc_t()
        var (s, w, b, d) = (source.raw, weights.raw, bias?.raw ?? dnnl_memory_desc_t(), destination.raw)
        let p = spatial(g)
        try check(dnnl_dilated_convolution_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, raw(algorithm),
            &s, &w, &b, &d, p.strides, p.dilation, p.low, p.high), "dnnl_dilated_convolution_forward_desc_init(\(g))")
        return try primitiveDescriptor(&desc, fusedReLU: fusedReLU, engine: engine, "convolution forward \(g)")
    }

    static func convolutionBackwardData(
        _ g: ConvolutionGeometry, algorithm: ConvolutionAlgorithm,
        diffSource: MemoryDescriptor, weights: MemoryDescriptor, diffDestination: MemoryDescriptor,
        forward: OpaquePointer, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_convolution_desc_t()
        var (ds, w, dd) = (diffSource.raw, weights.raw, diffDestination.raw)
        let p = spatial(g)
        try check(dnnl_dilated_convolution_backward_data_desc_init(
            &desc, raw(algorithm), &ds, &w, &dd, p.strides, p.dilation, p.low, p.high),
                  "dnnl_dilated_convolution_backward_data_desc_init(\(g))")
        return try primitiveDescriptor(&desc, engine: engine, hint: forward, "convolution backward data \(g)")
    }

    static func convolutionBackwardWeights(
        _ g: ConvolutionGeometry, algorithm: ConvolutionAlgorithm,
        source: MemoryDescriptor, diffWeights: MemoryDescriptor, diffBias: MemoryDescriptor?,
        diffDestination: MemoryDescriptor, forward: OpaquePointer, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_convolution_desc_t()
        var (s, dw, db, dd) = (source.raw, diffWeights.raw, diffBias?.raw ?? dnnl_memory_desc_t(), diffDestination.raw)
        let p = spatial(g)
        try check(dnnl_dilated_convolution_backward_weights_desc_init(
            &desc, raw(algorithm), &s, &dw, &db, &dd, p.strides, p.dilation, p.low, p.high),
                  "dnnl_dilated_convolution_backward_weights_desc_init(\(g))")
        return try primitiveDescriptor(&desc, engine: engine, hint: forward, "convolution backward weights \(g)")
    }

    static func innerProductForward(
        training: Bool, source: MemoryDescriptor, weights: MemoryDescriptor, bias: MemoryDescriptor?,
        destination: MemoryDescriptor, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_inner_product_desc_t()
        var (s, w, b, d) = (source.raw, weights.raw, bias?.raw ?? dnnl_memory_desc_t(), destination.raw)
        try check(dnnl_inner_product_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, &s, &w, &b, &d),
                  "dnnl_inner_product_forward_desc_init(src \(source), weights \(weights))")
        return try primitiveDescriptor(&desc, engine: engine, "inner product forward")
    }

    static func innerProductBackwardData(
        diffSource: MemoryDescriptor, weights: MemoryDescriptor, diffDestination: MemoryDescriptor,
        forward: OpaquePointer, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_inner_product_desc_t()
        var (ds, w, dd) = (diffSource.raw, weights.raw, diffDestination.raw)
        try check(dnnl_inner_product_backward_data_desc_init(&desc, &ds, &w, &dd),
                  "dnnl_inner_product_backward_data_desc_init(diff src \(diffSource))")
        return try primitiveDescriptor(&desc, engine: engine, hint: forward, "inner product backward data")
    }

    static func innerProductBackwardWeights(
        source: MemoryDescriptor, diffWeights: MemoryDescriptor, diffBias: MemoryDescriptor?,
        diffDestination: MemoryDescriptor, forward: OpaquePointer, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_inner_product_desc_t()
        var (s, dw, db, dd) = (source.raw, diffWeights.raw, diffBias?.raw ?? dnnl_memory_desc_t(), diffDestination.raw)
        try check(dnnl_inner_product_backward_weights_desc_init(&desc, &s, &dw, &db, &dd),
                  "dnnl_inner_product_backward_weights_desc_init(src \(source))")
        return try primitiveDescriptor(&desc, engine: engine, hint: forward, "inner product backward weights")
    }

    /// Flags of a batch normalization: scale and shift as separate arguments, optionally
    /// statistics given by the caller and a fused ReLU.
    private static func normalizationFlags(globalStatistics: Bool, fusedReLU: Bool) -> UInt32 {
        var flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        if globalStatistics { flags |= dnnl_use_global_stats.rawValue }
        if fusedReLU { flags |= dnnl_fuse_norm_relu.rawValue }
        return flags
    }

    static func batchNormalizationForward(
        data: MemoryDescriptor, epsilon: Float, globalStatistics: Bool, fusedReLU: Bool, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_batch_normalization_desc_t()
        var d = data.raw
        try check(dnnl_batch_normalization_forward_desc_init(
            &desc, dnnl_forward_training, &d, epsilon,
            normalizationFlags(globalStatistics: globalStatistics, fusedReLU: fusedReLU)),
                  "dnnl_batch_normalization_forward_desc_init(\(data))")
        return try primitiveDescriptor(&desc, engine: engine, "batch normalization forward \(data)")
    }

    static func batchNormalizationBackward(
        data: MemoryDescriptor, epsilon: Float, globalStatistics: Bool, fusedReLU: Bool,
        forward: OpaquePointer, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_batch_normalization_desc_t()
        var (dd, d) = (data.raw, data.raw)
        try check(dnnl_batch_normalization_backward_desc_init(
            &desc, dnnl_backward, &dd, &d, epsilon,
            normalizationFlags(globalStatistics: globalStatistics, fusedReLU: fusedReLU)),
                  "dnnl_batch_normalization_backward_desc_init(\(data))")
        return try primitiveDescriptor(&desc, engine: engine, hint: forward, "batch normalization backward \(data)")
    }

    /// oneDNN's algorithm and its alpha, beta for an element-wise function.
    private static func raw(_ function: EltwiseFunction, useDestination: Bool) -> (dnnl_alg_kind_t, Float, Float) {
        switch function {
        case .relu(let slope): return (useDestination ? dnnl_eltwise_relu_use_dst_for_bwd : dnnl_eltwise_relu, slope, 0)
        case .tanh: return (useDestination ? dnnl_eltwise_tanh_use_dst_for_bwd : dnnl_eltwise_tanh, 0, 0)
        case .sigmoid: return (useDestination ? dnnl_eltwise_logistic_use_dst_for_bwd : dnnl_eltwise_logistic, 0, 0)
        case .clip(let low, let high):
            return (useDestination ? dnnl_eltwise_clip_v2_use_dst_for_bwd : dnnl_eltwise_clip_v2, low, high)
        case .geluErf: return (dnnl_eltwise_gelu_erf, 0, 0)
        case .geluTanh: return (dnnl_eltwise_gelu_tanh, 0, 0)
        case .swish(let beta): return (dnnl_eltwise_swish, beta, 0)
        case .hardswish: return (dnnl_eltwise_hardswish, 0, 0)
        case .linear(let scale, let shift): return (dnnl_eltwise_linear, scale, shift)
        }
    }

    static func eltwiseForward(
        _ function: EltwiseFunction, useDestination: Bool, training: Bool, data: MemoryDescriptor, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_eltwise_desc_t()
        var d = data.raw
        let (algorithm, alpha, beta) = raw(function, useDestination: useDestination)
        try check(dnnl_eltwise_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, algorithm, &d, alpha, beta),
                  "dnnl_eltwise_forward_desc_init(\(function), \(data))")
        return try primitiveDescriptor(&desc, engine: engine, "eltwise forward \(function)")
    }

    static func eltwiseBackward(
        _ function: EltwiseFunction, useDestination: Bool, data: MemoryDescriptor,
        forward: OpaquePointer, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_eltwise_desc_t()
        var (dd, d) = (data.raw, data.raw)
        let (algorithm, alpha, beta) = raw(function, useDestination: useDestination)
        try check(dnnl_eltwise_backward_desc_init(&desc, algorithm, &dd, &d, alpha, beta),
                  "dnnl_eltwise_backward_desc_init(\(function), \(data))")
        return try primitiveDescriptor(&desc, engine: engine, hint: forward, "eltwise backward \(function)")
    }

    private static func raw(_ kind: PoolingKind) -> dnnl_alg_kind_t {
        switch kind {
        case .max: return dnnl_pooling_max
        case .averageIncludingPadding: return dnnl_pooling_avg_include_padding
        case .averageExcludingPadding: return dnnl_pooling_avg_exclude_padding
        }
    }

    static func poolingForward(
        _ g: PoolingGeometry, training: Bool, source: MemoryDescriptor, destination: MemoryDescriptor, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_pooling_desc_t()
        var (s, d) = (source.raw, destination.raw)
        try check(dnnl_pooling_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, raw(g.kind), &s, &d,
            [Int64(g.strideHeight), Int64(g.strideWidth)], [Int64(g.kernelHeight), Int64(g.kernelWidth)],
            [Int64(g.paddingTop), Int64(g.paddingLeft)], [Int64(g.paddingBottom), Int64(g.paddingRight)]),
                  "dnnl_pooling_forward_desc_init(\(g))")
        return try primitiveDescriptor(&desc, engine: engine, "pooling forward \(g)")
    }

    static func poolingBackward(
        _ g: PoolingGeometry, diffSource: MemoryDescriptor, diffDestination: MemoryDescriptor,
        forward: OpaquePointer, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_pooling_desc_t()
        var (ds, dd) = (diffSource.raw, diffDestination.raw)
        try check(dnnl_pooling_backward_desc_init(
            &desc, raw(g.kind), &ds, &dd,
            [Int64(g.strideHeight), Int64(g.strideWidth)], [Int64(g.kernelHeight), Int64(g.kernelWidth)],
            [Int64(g.paddingTop), Int64(g.paddingLeft)], [Int64(g.paddingBottom), Int64(g.paddingRight)]),
                  "dnnl_pooling_backward_desc_init(\(g))")
        return try primitiveDescriptor(&desc, engine: engine, hint: forward, "pooling backward \(g)")
    }

    private static func raw(_ operation: BinaryOperation) -> dnnl_alg_kind_t {
        switch operation {
        case .add: return dnnl_binary_add
        case .multiply: return dnnl_binary_mul
        case .maximum: return dnnl_binary_max
        }
    }

    static func binary(
        _ operation: BinaryOperation, first: MemoryDescriptor, second: MemoryDescriptor,
        destination: MemoryDescriptor, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var desc = dnnl_binary_desc_t()
        var (a, b, d) = (first.raw, second.raw, destination.raw)
        try check(dnnl_binary_desc_init(&desc, raw(operation), &a, &b, &d),
                  "dnnl_binary_desc_init(\(operation), \(first), \(second))")
        return try primitiveDescriptor(&desc, engine: engine, "binary \(operation)")
    }

    /// A sum `dst = Σ scales[i] · sources[i]`.
    static func sum(
        scales: [Float], sources: [MemoryDescriptor], destination: MemoryDescriptor, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var d = destination.raw
        let raws = sources.map(\.raw)
        return try withAttributes { attributes in
            var pd: OpaquePointer?
            try check(dnnl_sum_primitive_desc_create(&pd, &d, Int32(raws.count), scales, raws, attributes, engine),
                      "dnnl_sum_primitive_desc_create(\(sources.count) sources, dst \(destination))")
            return pd!
        }
    }

    static func concat(
        axis: Int, sources: [MemoryDescriptor], destination: MemoryDescriptor, engine: OpaquePointer
    ) throws -> OpaquePointer {
        var d = destination.raw
        let raws = sources.map(\.raw)
        return try withAttributes { attributes in
            var pd: OpaquePointer?
            try check(dnnl_concat_primitive_desc_create(&pd, &d, Int32(raws.count), Int32(axis), raws, attributes, engine),
                      "dnnl_concat_primitive_desc_create(\(sources.count) sources on axis \(axis))")
            return pd!
        }
    }

    static func reorder(from source: MemoryDescriptor, to destination: MemoryDescriptor, engine: OpaquePointer) throws -> OpaquePointer {
        var (s, d) = (source.raw, destination.raw)
        return try withAttributes { attributes in
            var pd: OpaquePointer?
            try check(dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, attributes),
                      "dnnl_reorder_primitive_desc_create(\(source) -> \(destination))")
            return pd!
        }
    }

    // MARK: - Queries on a primitive descriptor

    /// The implementation oneDNN chose, e.g. "jit:avx512_core".
    static func implementation(_ pd: OpaquePointer) -> String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else {
            return "unknown"
        }
        return String(cString: name)
    }

    /// The memory descriptor of one execution argument (a zero descriptor when unused).
    static func argumentDescriptor(_ pd: OpaquePointer, _ argument: Argument) -> RawMemoryDescriptor {
        dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, argument.index)?.pointee ?? dnnl_memory_desc_t()
    }

    static func destroy(primitiveDescriptor pd: OpaquePointer) { dnnl_primitive_desc_destroy(pd) }

    // MARK: - Primitives and memory objects

    static func makePrimitive(_ pd: OpaquePointer) throws -> OpaquePointer {
        var primitive: OpaquePointer?
        try check(dnnl_primitive_create(&primitive, pd), "dnnl_primitive_create(\(implementation(pd)))")
        return primitive!
    }

    static func destroy(primitive: OpaquePointer) { dnnl_primitive_destroy(primitive) }

    /// A memory object with no buffer yet (`DNNL_MEMORY_NONE`); `bind` gives it one.
    static func makeMemory(_ md: RawMemoryDescriptor, engine: OpaquePointer) throws -> OpaquePointer {
        var memory: OpaquePointer?
        var md = md
        try check(dnnl_memory_create(&memory, &md, engine, nil), "dnnl_memory_create")
        return memory!
    }

    static func destroy(memory: OpaquePointer) { dnnl_memory_destroy(memory) }

    /// Points `memory` at `buffer` (no copy; oneDNN zero-fills the padding of a blocked layout).
    static func bind(_ memory: OpaquePointer, to buffer: UnsafeRawPointer?) throws {
        try check(dnnl_memory_set_data_handle(memory, UnsafeMutableRawPointer(mutating: buffer)), "dnnl_memory_set_data_handle")
    }

    /// Storage for the `(argument, memory)` pairs handed to `dnnl_primitive_execute`.
    typealias ExecutionArguments = UnsafeMutablePointer<dnnl_exec_arg_t>

    static func allocateArguments(_ pairs: [(Argument, OpaquePointer)]) -> ExecutionArguments {
        let arguments = ExecutionArguments.allocate(capacity: max(1, pairs.count))
        for (i, (argument, memory)) in pairs.enumerated() {
            arguments[i] = dnnl_exec_arg_t(arg: argument.index, memory: memory)
        }
        return arguments
    }

    static func execute(_ primitive: OpaquePointer, stream: OpaquePointer, arguments: ExecutionArguments, count: Int) throws {
        try check(dnnl_primitive_execute(primitive, stream, Int32(count), arguments), "dnnl_primitive_execute")
    }
}

/// An execution argument of a primitive (oneDNN's `DNNL_ARG_*`).
struct Argument: Equatable, CustomStringConvertible {
    let index: Int32

    static let source = Argument(index: DNNL_ARG_SRC)
    static let secondSource = Argument(index: DNNL_ARG_SRC_1)
    static let destination = Argument(index: DNNL_ARG_DST)
    static let weights = Argument(index: DNNL_ARG_WEIGHTS)
    static let bias = Argument(index: DNNL_ARG_BIAS)
    static let mean = Argument(index: DNNL_ARG_MEAN)
    static let variance = Argument(index: DNNL_ARG_VARIANCE)
    static let scale = Argument(index: DNNL_ARG_SCALE)
    static let shift = Argument(index: DNNL_ARG_SHIFT)
    static let workspace = Argument(index: DNNL_ARG_WORKSPACE)
    static let scratchpad = Argument(index: DNNL_ARG_SCRATCHPAD)
    static let diffSource = Argument(index: DNNL_ARG_DIFF_SRC)
    static let diffDestination = Argument(index: DNNL_ARG_DIFF_DST)
    static let diffWeights = Argument(index: DNNL_ARG_DIFF_WEIGHTS)
    static let diffBias = Argument(index: DNNL_ARG_DIFF_BIAS)
    static let diffScale = Argument(index: DNNL_ARG_DIFF_SCALE)
    static let diffShift = Argument(index: DNNL_ARG_DIFF_SHIFT)

    /// The `i`-th source of a sum or concat.
    static func multipleSource(_ i: Int) -> Argument { Argument(index: DNNL_ARG_MULTIPLE_SRC + Int32(i)) }

    var description: String { "argument \(index)" }
}
