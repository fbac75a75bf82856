package dev.sdeploy.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import androidx.exifinterface.media.ExifInterface
import dev.sdeploy.demo.core.ArgbImage
import java.io.IOException
import java.io.InputStream

/**
 * Image file -> upright, non-premultiplied ARGB pixels, the way shufflenet_deploy's `load_image`
 * reads it (alpha dropped later by the preprocessing, EXIF orientation applied).
 */
object ImageDecoding {
    /**
     * Images with more pixels are decoded at 1/2, 1/4, ... resolution (BitmapFactory's
     * inSampleSize) to bound memory; those results can differ slightly from `sdeploy classify`
     * on the original file. Typical 12 MP phone photos are decoded in full.
     */
    const val MAX_PIXELS = 16_000_000L

    class Decoded(val image: ArgbImage, val sampleSize: Int, val orientation: Int)

    fun decode(open: () -> InputStream): Decoded {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        open().use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw IOException("not an image this device can decode")
        var sampleSize = 1
        while ((bounds.outWidth / sampleSize).toLong() * (bounds.outHeight / sampleSize) > MAX_PIXELS) sampleSize *= 2

        val options = BitmapFactory.Options().apply {
            inSampleSize = sampleSize
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inPremultiplied = false // getPixels then returns the file's own RGB even where alpha < 255
            inScaled = false
        }
        val bitmap = open().use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw IOException("cannot decode this image")
        val width = bitmap.width
        val height = bitmap.height
        val pixels = IntArray(width * height)
        bitmap.getPixels(pixels, 0, width, 0, 0, width, height)
        bitmap.recycle()

        val orientation = try {
            open().use { ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL) }
        } catch (e: IOException) {
            ExifInterface.ORIENTATION_NORMAL
        }
        return Decoded(ArgbImage(pixels, width, height).oriented(orientation), sampleSize, orientation)
    }

    /** A displayable (premultiplied) bitmap of at most [maxSide] pixels per side. */
    fun displayBitmap(image: ArgbImage, maxSide: Int = 1600): Bitmap {
        val small = image.thumbnail(maxSide)
        return Bitmap.createBitmap(small.pixels, small.width, small.height, Bitmap.Config.ARGB_8888)
    }
}
