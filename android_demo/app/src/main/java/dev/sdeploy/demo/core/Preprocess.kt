package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/**
 * The input contract of shufflenet_deploy/preprocess.py, step for step, so the app feeds the
 * network exactly what `sdeploy classify` does (checked to 1e-5 against Python's golden vectors):
 *
 * 1. pixels are Android `Bitmap.getPixels` ints, 0xAARRGGBB, not premultiplied; alpha is dropped;
 * 2. shorter-side resize to `resize_size` (long side `trunc(resize_size * long / short)`) with the
 *    antialiased triangle filter, in float64, without re-quantising to 8 bits;
 * 3. centre crop `img_size` at offset `floor((resized - img_size) / 2)`;
 * 4. channels in `color_order`, then `(pixel * scale - mean) / std`, CHW float32 ([normalize]),
 *    or HWC with `layout = NHWC`.
 *
 * Models whose model.json input kind is `pixels` get step 2-3's pixels rounded to 8 bits instead
 * ([quantize]): RGB, not normalised, HWC (NHWC) or CHW.
 */
object Preprocess {
    /** (width, height) after scaling the shorter side to [shorter]; `resized_size` in Python. */
    fun resizedSize(width: Int, height: Int, shorter: Int): IntArray {
        require(width > 0 && height > 0) { "image is empty (${width}x$height)" }
        // Python: int(shorter * height / width): exact integer product, correctly rounded division, trunc.
        return if (width <= height) {
            intArrayOf(shorter, ((shorter.toLong() * height).toDouble() / width).toInt())
        } else {
            intArrayOf(((shorter.toLong() * width).toDouble() / height).toInt(), shorter)
        }
    }

    /** The taps of one output pixel: input indices `first until first + weights.size`. */
    class Taps(val first: Int, val weights: DoubleArray)

    /** Taps of output pixel [index] when resampling [inSize] pixels to [outSize]; `resample_weights` row. */
    fun taps(inSize: Int, outSize: Int, index: Int): Taps {
        val scale = inSize.toDouble() / outSize
        val support = Math.max(scale, 1.0)
        val center = (index + 0.5) * scale
        val lo = Math.max((center - support + 0.5).toInt(), 0) // toInt truncates towards zero, like math.trunc
        val hi = Math.min((center + support + 0.5).toInt(), inSize)
        val weights = DoubleArray(Math.max(hi - lo, 0))
        var sum = 0.0
        for (j in lo until hi) {
            val w = Math.max(0.0, 1.0 - Math.abs((j + 0.5 - center) / support))
            weights[j - lo] = w
            sum += w
        }
        for (k in weights.indices) weights[k] = weights[k] / sum
        return Taps(lo, weights)
    }

    /**
     * Steps 2 and 3: `img_size * img_size * 3` float64 RGB pixels in [0, 255], row-major HWC.
     * Only the rows and columns inside the crop are computed, one output row at a time, so memory
     * stays O(width) beyond the input.
     */
    fun resizeAndCrop(argb: IntArray, width: Int, height: Int, contract: InputContract): DoubleArray {
        require(argb.size >= width.toLong() * height) { "pixel array has ${argb.size} values for a ${width}x$height image" }
        return resizeAndCrop(OrientedImage(ArgbImage(argb, width, height), 1), contract)
    }

    /** [resizeAndCrop] of the upright image, read through its orientation (no rotated copy). */
    fun resizeAndCrop(image: OrientedImage, contract: InputContract): DoubleArray {
        val argb = image.image.pixels
        val width = image.width
        val height = image.height
        val dx = image.dx
        val resized = resizedSize(width, height, contract.resizeSize)
        val newW = resized[0]
        val newH = resized[1]
        val size = contract.imgSize
        val top = (newH - size) / 2
        val left = (newW - size) / 2
        val colTaps = Array(size) { taps(width, newW, left + it) }
        var colLo = width
        var colHi = 0
        for (t in colTaps) {
            colLo = Math.min(colLo, t.first)
            colHi = Math.max(colHi, t.first + t.weights.size)
        }
        val out = DoubleArray(size * size * 3)
        val row = DoubleArray(width * 3) // one vertically resampled row, columns colLo until colHi
        for (r in 0 until size) {
            val rowTaps = taps(height, newH, top + r)
            java.util.Arrays.fill(row, 0.0)
            for (k in rowTaps.weights.indices) {
                val w = rowTaps.weights[k]
                val base = image.origin + (rowTaps.first + k) * image.dy
                for (x in colLo until colHi) {
                    val p = argb[base + x * dx]
                    val o = x * 3
                    row[o] += w * ((p shr 16) and 0xFF)
                    row[o + 1] += w * ((p shr 8) and 0xFF)
                    row[o + 2] += w * (p and 0xFF)
                }
            }
            for (q in 0 until size) {
                val t = colTaps[q]
                var red = 0.0
                var green = 0.0
                var blue = 0.0
                for (k in t.weights.indices) {
                    val w = t.weights[k]
                    val o = (t.first + k) * 3
                    red += w * row[o]
                    green += w * row[o + 1]
                    blue += w * row[o + 2]
                }
                val o = (r * size + q) * 3
                out[o] = red
                out[o + 1] = green
                out[o + 2] = blue
            }
        }
        return out
    }

    /** Step 4: HWC RGB pixels in [0, 255] -> CHW float32 network input in the contract's colour order. */
    fun normalize(pixels: DoubleArray, contract: InputContract): FloatArray =
        normalizeTo(pixels, contract) { channel, i, plane -> channel * plane + i }

    /** Step 4 laid out as HWC (an NHWC input): element `(y * S + x) * 3 + c`, channels in the contract's order. */
    fun normalizeHwc(pixels: DoubleArray, contract: InputContract): FloatArray =
        normalizeTo(pixels, contract) { channel, i, _ -> i * 3 + channel }

    /** Both layouts: `index(channel, pixel, plane)` places each value; inline, so the loop stays a plain loop. */
    private inline fun normalizeTo(pixels: DoubleArray, contract: InputContract, index: (Int, Int, Int) -> Int): FloatArray {
        val plane = pixels.size / 3
        val out = FloatArray(pixels.size)
        val bgr = contract.colorOrder == "BGR"
        for (channel in 0 until 3) {
            val source = if (bgr) 2 - channel else channel
            val mean = contract.mean[channel]
            val std = contract.std[channel]
            for (i in 0 until plane) {
                out[index(channel, i, plane)] = ((pixels[i * 3 + source] * contract.scale - mean) / std).toFloat()
            }
        }
        return out
    }

    /**
     * Resized HWC RGB pixels in [0, 255] -> uint8, rounded half to even like numpy's `rint`, always in
     * RGB order (a `pixels` model does its own colour order and normalisation). HWC, or CHW if [chw].
     */
    fun quantize(pixels: DoubleArray, chw: Boolean): ByteArray {
        val plane = pixels.size / 3
        val out = ByteArray(pixels.size)
        for (i in 0 until plane) {
            for (c in 0 until 3) {
                val v = Math.min(255.0, Math.max(0.0, Math.rint(pixels[i * 3 + c]))).toInt()
                out[if (chw) c * plane + i else i * 3 + c] = v.toByte()
            }
        }
        return out
    }

    /** ARGB pixels -> `3 * img_size * img_size` floats, CHW, ready for `Tensor.fromBlob(.., [1, 3, S, S])`. */
    fun preprocess(argb: IntArray, width: Int, height: Int, contract: InputContract): FloatArray =
        normalize(resizeAndCrop(argb, width, height, contract), contract)
}

/**
 * One image as the model's input tensor: float32 ([floats], input kind `tensor`) or uint8
 * ([bytes], kind `pixels`), laid out as model.json's input.layout, with the shape to declare.
 */
class TensorInput private constructor(val shape: LongArray, val floats: FloatArray?, val bytes: ByteArray?) {
    val isBytes: Boolean get() = bytes != null

    companion object {
        fun ofFloats(values: FloatArray, shape: LongArray): TensorInput = TensorInput(shape.copyOf(), values, null)

        fun ofBytes(values: ByteArray, shape: LongArray): TensorInput = TensorInput(shape.copyOf(), null, values)

        /** Decoded ARGB pixels -> the input [spec] asks for, preprocessed with [contract]. */
        fun fromImage(argb: IntArray, width: Int, height: Int, spec: InputSpec, contract: InputContract): TensorInput =
            fromImage(OrientedImage(ArgbImage(argb, width, height), 1), spec, contract)

        /** A decoded photo, upright through its EXIF orientation -> the input [spec] asks for. */
        fun fromImage(image: OrientedImage, spec: InputSpec, contract: InputContract): TensorInput {
            val pixels = Preprocess.resizeAndCrop(image, contract)
            val shape = spec.shapeForOneImage()
            return when {
                spec.isPixels -> ofBytes(Preprocess.quantize(pixels, chw = !spec.isNhwc), shape)
                spec.isNhwc -> ofFloats(Preprocess.normalizeHwc(pixels, contract), shape)
                else -> ofFloats(Preprocess.normalize(pixels, contract), shape)
            }
        }
    }
}
