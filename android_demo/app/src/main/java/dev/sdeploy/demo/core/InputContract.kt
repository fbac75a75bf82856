package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/**
 * How an image becomes the network's input: the `preprocess` object of model.json, i.e.
 * `InputContract.to_dict()` of shufflenet_deploy/preprocess.py. Missing keys take the same
 * defaults as the Python dataclass; unknown keys are ignored, like `InputContract.from_dict`.
 */
data class InputContract(
    val imgSize: Int = 224,
    val resizeSize: Int = 256,
    val interpolation: String = BILINEAR_ANTIALIAS,
    val crop: String = "center",
    val mean: List<Double> = IMAGENET_MEAN,
    val std: List<Double> = IMAGENET_STD,
    val scale: Double = 1.0 / 255.0,
    val colorOrder: String = "RGB",
    val layout: String = "NCHW",
    val resize: String = "shorter-side"
) {
    init {
        require(imgSize >= 1) { "img_size must be positive, got $imgSize" }
        require(resizeSize >= imgSize) { "resize size $resizeSize is smaller than the crop $imgSize" }
        require(interpolation == BILINEAR_ANTIALIAS) { "unsupported interpolation '$interpolation' (this app implements $BILINEAR_ANTIALIAS)" }
        require(crop == "center") { "unsupported crop '$crop' (this app implements center)" }
        require(resize == "shorter-side") { "unsupported resize '$resize' (this app implements shorter-side)" }
        // The tensor layout the app feeds is model.json's input.layout; the contract's own field is informative.
        require(layout == "NCHW" || layout == "NHWC") { "unsupported layout '$layout' (NCHW or NHWC)" }
        require(colorOrder == "RGB" || colorOrder == "BGR") { "unsupported color_order '$colorOrder' (RGB or BGR)" }
        require(mean.size == 3) { "mean must have 3 values, got ${mean.size}" }
        require(std.size == 3 && std.all { it != 0.0 }) { "std must have 3 non-zero values, got $std" }
    }

    companion object {
        const val BILINEAR_ANTIALIAS = "bilinear-antialias"
        val IMAGENET_MEAN: List<Double> = listOf(0.485, 0.456, 0.406)
        val IMAGENET_STD: List<Double> = listOf(0.229, 0.224, 0.225)

        /** Parse a contract object; unsupported values raise [JsonException] naming the field. */
        fun fromJson(json: JsonObject): InputContract {
            val defaults = InputContract()
            try {
                return InputContract(
                    imgSize = json.intOr("img_size", defaults.imgSize),
                    resizeSize = json.intOr("resize_size", defaults.resizeSize),
                    interpolation = json.stringOr("interpolation", defaults.interpolation),
                    crop = json.stringOr("crop", defaults.crop),
                    mean = if (json.has("mean")) json.doubles("mean") else defaults.mean,
                    std = if (json.has("std")) json.doubles("std") else defaults.std,
                    scale = json.doubleOr("scale", defaults.scale),
                    colorOrder = json.stringOr("color_order", defaults.colorOrder),
                    layout = json.stringOr("layout", defaults.layout),
                    resize = json.stringOr("resize", defaults.resize)
                )
            } catch (e: IllegalArgumentException) {
                throw JsonException("${json.source}: ${e.message}")
            }
        }
    }
}
