package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/** Decoded pixels as `Bitmap.getPixels` gives them: 0xAARRGGBB ints, row-major, not premultiplied. */
class ArgbImage(val pixels: IntArray, val width: Int, val height: Int) {
    init {
        require(width > 0 && height > 0) { "image is empty (${width}x$height)" }
        require(pixels.size.toLong() == width.toLong() * height) { "${pixels.size} pixels for a ${width}x$height image" }
    }

    operator fun get(x: Int, y: Int): Int = pixels[y * width + x]

    /**
     * The upright image for an EXIF orientation tag (1..8), as Pillow's `ImageOps.exif_transpose`
     * does; unknown values leave the image as it is.
     */
    fun oriented(orientation: Int): ArgbImage {
        if (orientation < 2 || orientation > 8) return this
        val swap = orientation >= 5 // 5..8 transpose the axes
        val outW = if (swap) height else width
        val outH = if (swap) width else height
        val out = IntArray(pixels.size)
        for (y in 0 until outH) {
            for (x in 0 until outW) {
                val source = when (orientation) {
                    2 -> get(width - 1 - x, y) // mirror horizontally
                    3 -> get(width - 1 - x, height - 1 - y) // rotate 180
                    4 -> get(x, height - 1 - y) // mirror vertically
                    5 -> get(y, x) // transpose
                    6 -> get(y, height - 1 - x) // rotate 90 clockwise
                    7 -> get(width - 1 - y, height - 1 - x) // transverse
                    else -> get(width - 1 - y, x) // 8: rotate 90 counter-clockwise
                }
                out[y * outW + x] = source
            }
        }
        return ArgbImage(out, outW, outH)
    }

    /** A nearest-neighbour copy whose longer side is at most [maxSide], for display only. */
    fun thumbnail(maxSide: Int): ArgbImage {
        val longer = Math.max(width, height)
        if (longer <= maxSide) return this
        val outW = Math.max(1, (width.toLong() * maxSide / longer).toInt())
        val outH = Math.max(1, (height.toLong() * maxSide / longer).toInt())
        val out = IntArray(outW * outH)
        for (y in 0 until outH) {
            val sy = (y.toLong() * height / outH).toInt()
            for (x in 0 until outW) out[y * outW + x] = pixels[sy * width + (x.toLong() * width / outW).toInt()]
        }
        return ArgbImage(out, outW, outH)
    }

    companion object {
        /** Raw RGBA bytes (as in golden.json) -> ARGB ints. */
        fun fromRgba(rgba: ByteArray, width: Int, height: Int): ArgbImage {
            require(rgba.size.toLong() == width.toLong() * height * 4) { "${rgba.size} bytes for a ${width}x$height RGBA image" }
            val pixels = IntArray(width * height) { i ->
                val r = rgba[i * 4].toInt() and 0xFF
                val g = rgba[i * 4 + 1].toInt() and 0xFF
                val b = rgba[i * 4 + 2].toInt() and 0xFF
                val a = rgba[i * 4 + 3].toInt() and 0xFF
                (a shl 24) or (r shl 16) or (g shl 8) or b
            }
            return ArgbImage(pixels, width, height)
        }
    }
}

/**
 * [image] as it looks after its EXIF [orientation] (1..8, as Pillow's `ImageOps.exif_transpose`),
 * without copying it: pixel (x, y) of the upright image is `image.pixels[origin + x * dx + y * dy]`.
 * The preprocessing reads through this view, so a rotated photo costs no second pixel array.
 */
class OrientedImage(val image: ArgbImage, orientation: Int) {
    val orientation: Int = if (orientation in 2..8) orientation else 1
    private val swap = this.orientation >= 5
    val width: Int = if (swap) image.height else image.width
    val height: Int = if (swap) image.width else image.height
    val origin: Int
    val dx: Int
    val dy: Int

    init {
        val w = image.width
        val last = (image.height - 1) * w // start of the stored image's last row
        when (this.orientation) {
            2 -> { origin = w - 1; dx = -1; dy = w } // mirror horizontally
            3 -> { origin = last + w - 1; dx = -1; dy = -w } // rotate 180
            4 -> { origin = last; dx = 1; dy = -w } // mirror vertically
            5 -> { origin = 0; dx = w; dy = 1 } // transpose
            6 -> { origin = last; dx = -w; dy = 1 } // rotate 90 clockwise
            7 -> { origin = last + w - 1; dx = -w; dy = -1 } // transverse
            8 -> { origin = w - 1; dx = w; dy = -1 } // rotate 90 counter-clockwise
            else -> { origin = 0; dx = 1; dy = w }
        }
    }

    operator fun get(x: Int, y: Int): Int = image.pixels[origin + x * dx + y * dy]

    /** The upright pixels as a new image (tests and small thumbnails only). */
    fun toArgbImage(): ArgbImage = ArgbImage(IntArray(width * height) { this[it % width, it / width] }, width, height)

    /** A nearest-neighbour upright copy whose longer side is at most [maxSide], for display only. */
    fun thumbnail(maxSide: Int): ArgbImage {
        val longer = Math.max(width, height)
        val outW = if (longer <= maxSide) width else Math.max(1, (width.toLong() * maxSide / longer).toInt())
        val outH = if (longer <= maxSide) height else Math.max(1, (height.toLong() * maxSide / longer).toInt())
        val out = IntArray(outW * outH)
        for (y in 0 until outH) {
            val sy = (y.toLong() * height / outH).toInt()
            for (x in 0 until outW) out[y * outW + x] = this[(x.toLong() * width / outW).toInt(), sy]
        }
        return ArgbImage(out, outW, outH)
    }
}

