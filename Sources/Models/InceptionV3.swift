// Inception v3: C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna, "Rethinking the
// Inception Architecture for Computer Vision", CVPR 2016. Factorized convolutions (5×5 as
// two 3×3, n×n as 1×n and n×1), grid reduction by parallel strided convolution and pooling.
// As torchvision builds it without the auxiliary classifier (`aux_logits=False`, no input
// transform; batch norm eps 0.001), under torchvision's keys.
import NN

enum InceptionV3 {
    static let spec = ModelSpec(name: "inception-v3", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                build: { inceptionV3(inputChannels: $0, classes: $1) })
}

/// torchvision's `BasicConv2d`: convolution without bias, batch norm (eps 0.001), ReLU; the
/// kernel, stride and padding as (height, width).
private func basic(_ name: String, _ cin: Int, _ cout: Int, _ k: (Int, Int), stride: Int = 1,
                   padding: (Int, Int) = (0, 0)) -> Child {
    let window = Window2D(height: .init(kernel: k.0, stride: stride, padding: padding.0),
                          width: .init(kernel: k.1, stride: stride, padding: padding.1))
    return named(name, Sequential([named("conv", Conv2d(cin, cout, window: window, bias: false)),
                                   named("bn", BatchNorm(cout, eps: 0.001)), plain(relu())]))
}

private func basic(_ name: String, _ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, padding: Int = 0) -> Child {
    basic(name, cin, cout, (k, k), stride: stride, padding: (padding, padding))
}

/// A chain of layers as one branch of a concatenation.
private func chain(_ children: Child...) -> Child { plain(Sequential(children)) }

/// 35×35 grid (Figure 5): 1×1 | 1×1, 5×5 | 1×1, 3×3, 3×3 | 3×3 average pool, 1×1.
private func inceptionA(_ cin: Int, poolFeatures: Int) -> Concat {
    Concat([
        basic("branch1x1", cin, 64, 1),
        chain(basic("branch5x5_1", cin, 48, 1), basic("branch5x5_2", 48, 64, 5, padding: 2)),
        chain(basic("branch3x3dbl_1", cin, 64, 1), basic("branch3x3dbl_2", 64, 96, 3, padding: 1),
              basic("branch3x3dbl_3", 96, 96, 3, padding: 1)),
        chain(plain(Pool2d(.average, kernel: 3, stride: 1, padding: 1)), basic("branch_pool", cin, poolFeatures, 1)),
    ])
}

/// Grid reduction 35 → 17: strided 3×3 | 1×1, 3×3, strided 3×3 | strided 3×3 max pool.
private func inceptionB(_ cin: Int) -> Concat {
    Concat([
        basic("branch3x3", cin, 384, 3, stride: 2),
        chain(basic("branch3x3dbl_1", cin, 64, 1), basic("branch3x3dbl_2", 64, 96, 3, padding: 1),
              basic("branch3x3dbl_3", 96, 96, 3, stride: 2)),
        plain(maxPool(3, 2)),
    ])
}

/// 17×17 grid (Figure 6): 7×7 factorized into 1×7 and 7×1.
private func inceptionC(_ cin: Int, c7: Int) -> Concat {
    Concat([
        basic("branch1x1", cin, 192, 1),
        chain(basic("branch7x7_1", cin, c7, 1), basic("branch7x7_2", c7, c7, (1, 7), padding: (0, 3)),
              basic("branch7x7_3", c7, 192, (7, 1), padding: (3, 0))),
        chain(basic("branch7x7dbl_1", cin, c7, 1), basic("branch7x7dbl_2", c7, c7, (7, 1), padding: (3, 0)),
              basic("branch7x7dbl_3", c7, c7, (1, 7), padding: (0, 3)), basic("branch7x7dbl_4", c7, c7, (7, 1), padding: (3, 0)),
              basic("branch7x7dbl_5", c7, 192, (1, 7), padding: (0, 3))),
        chain(plain(Pool2d(.average, kernel: 3, stride: 1, padding: 1)), basic("branch_pool", cin, 192, 1)),
    ])
}

/// Grid reduction 17 → 8.
private func inceptionD(_ cin: Int) -> Concat {
    Concat([
        chain(basic("branch3x3_1", cin, 192, 1), basic("branch3x3_2", 192, 320, 3, stride: 2)),
        chain(basic("branch7x7x3_1", cin, 192, 1), basic("branch7x7x3_2", 192, 192, (1, 7), padding: (0, 3)),
              basic("branch7x7x3_3", 192, 192, (7, 1), padding: (3, 0)), basic("branch7x7x3_4", 192, 192, 3, stride: 2)),
        plain(maxPool(3, 2)),
    ])
}

/// 8×8 grid (Figure 7): the 3×3 outputs split into parallel 1×3 and 3×1, concatenated.
private func inceptionE(_ cin: Int) -> Concat {
    Concat([
        basic("branch1x1", cin, 320, 1),
        chain(basic("branch3x3_1", cin, 384, 1),
              plain(Concat([basic("branch3x3_2a", 384, 384, (1, 3), padding: (0, 1)),
                             basic("branch3x3_2b", 384, 384, (3, 1), padding: (1, 0))]))),
        chain(basic("branch3x3dbl_1", cin, 448, 1), basic("branch3x3dbl_2", 448, 384, 3, padding: 1),
              plain(Concat([basic("branch3x3dbl_3a", 384, 384, (1, 3), padding: (0, 1)),
                             basic("branch3x3dbl_3b", 384, 384, (3, 1), padding: (1, 0))]))),
        chain(plain(Pool2d(.average, kernel: 3, stride: 1, padding: 1)), basic("branch_pool", cin, 192, 1)),
    ])
}

func inceptionV3(inputChannels: Int, classes: Int, dropout: Real = 0.5) -> Sequential {
    Sequential([
        basic("Conv2d_1a_3x3", inputChannels, 32, 3, stride: 2), basic("Conv2d_2a_3x3", 32, 32, 3),
        basic("Conv2d_2b_3x3", 32, 64, 3, padding: 1), plain(maxPool(3, 2)),
        basic("Conv2d_3b_1x1", 64, 80, 1), basic("Conv2d_4a_3x3", 80, 192, 3), plain(maxPool(3, 2)),
        named("Mixed_5b", inceptionA(192, poolFeatures: 32)), named("Mixed_5c", inceptionA(256, poolFeatures: 64)),
        named("Mixed_5d", inceptionA(288, poolFeatures: 64)), named("Mixed_6a", inceptionB(288)),
        named("Mixed_6b", inceptionC(768, c7: 128)), named("Mixed_6c", inceptionC(768, c7: 160)),
        named("Mixed_6d", inceptionC(768, c7: 160)), named("Mixed_6e", inceptionC(768, c7: 192)),
        named("Mixed_7a", inceptionD(768)), named("Mixed_7b", inceptionE(1280)), named("Mixed_7c", inceptionE(2048)),
        plain(GlobalAvgPool()), plain(Dropout(dropout)), plain(Flatten()), named("fc", Linear(2048, classes)),
    ])
}
