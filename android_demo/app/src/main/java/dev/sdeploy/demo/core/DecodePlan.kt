package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/**
 * How much to shrink a photo while decoding it (BitmapFactory's `inSampleSize`), so a 24 MP
 * photo never needs 100+ MB of pixels, while the network input stays close to what Python
 * computes from the full-size file (android_demo/README.md, "Memory and parity").
 *
 * - JPEG ([nativeScaling]): the largest power of two, at most [MAX_SAMPLE_SIZE], that keeps the
 *   shorter side at least [MIN_SHORTER_FACTOR] x `resize_size` (e.g. 512 px for resize 256).
 *   libjpeg shrinks by 2, 4 and 8 in the DCT domain, which averages each block like a box
 *   filter, and the antialiased resize that follows still averages many source pixels.
 * - Every other format (PNG, HEIF, WebP, ...): Android shrinks most of them (PNG, HEIF, GIF) by
 *   keeping one pixel per s x s block, which aliases fine detail (measured at 1/4: up to 60 grey levels
 *   off on the network input). They are decoded at full size up to [MAX_UNSAMPLED_PIXELS], and
 *   only larger ones are shrunk, by as little as fits.
 *
 * The costs are measured by android_demo/tools/sampled_decode_parity.py.
 */
object DecodePlan {
    const val MIN_SHORTER_FACTOR = 2
    const val MAX_SAMPLE_SIZE = 8
    /** Any decoded image is shrunk further if it would still have more pixels (extreme panoramas). */
    const val MAX_PIXELS = 16_000_000L
    const val MAX_UNSAMPLED_PIXELS = MAX_PIXELS

    fun sampleSize(width: Int, height: Int, resizeSize: Int, nativeScaling: Boolean): Int {
        require(width > 0 && height > 0) { "image is empty (${width}x$height)" }
        val shorter = Math.min(width, height)
        var sample = 1
        if (nativeScaling) {
            while (sample < MAX_SAMPLE_SIZE && shorter / (sample * 2) >= MIN_SHORTER_FACTOR * resizeSize) sample *= 2
        }
        while ((width / sample).toLong() * (height / sample) > MAX_PIXELS) sample *= 2
        return sample
    }

    /** BitmapFactory's `outMimeType` of the formats Android decodes at 1/2, 1/4, 1/8 natively. */
    fun nativeScaling(mimeType: String?): Boolean = mimeType == "image/jpeg"
}
